"""The live list in a real browser (Debian's chromium, driven by Playwright), as deployed."""

import re
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import expect

from attempts.merge import Observation, merge
from attempts.models import Attempt, Source
from fakeseam import API_KEY
from testing.browser import chromium
from testing.servers import Gunicorn

pytestmark = [pytest.mark.browser, pytest.mark.gunicorn, pytest.mark.seam]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
ERROR = {"type": "device_disconnected", "message": "The lock went offline mid-action"}


def pending_on_seam(fake_seam) -> Attempt:
    action_attempt_id = fake_seam.lock_door()["action_attempt_id"]
    fake_seam.set_attempt(action_attempt_id, "pending")
    obs = Observation(status="pending", action_type="LOCK_DOOR")
    return merge(action_attempt_id, obs, source=Source.WEBHOOK).attempt


@pytest.mark.django_db(transaction=True)
def test_an_operator_watches_attempts_end_live(fake_seam):
    ARTIFACTS.mkdir(exist_ok=True)
    User.objects.create_user("operator", password="a long test password")
    older = fake_seam.unlock_door()["action_attempt_id"]
    fake_seam.set_attempt(older, "error", error={"type": "timeout", "message": "No answer"})
    merge(older, Observation(status="error", action_type="UNLOCK_DOOR"), source=Source.WEBHOOK)
    to_succeed, to_fail = pending_on_seam(fake_seam), pending_on_seam(fake_seam)
    env = {"SEAM_API_URL": fake_seam.url, "SEAM_API_KEY": API_KEY, "SEAM_POLL_SECONDS": "1"}

    with Gunicorn(env=env) as server, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        polls: list[float] = []
        page.on(
            "request",
            lambda r: "/attempts/poll/" in r.url and polls.append(time.monotonic()),
        )

        page.goto(f"{server.url}/attempts/")
        expect(page).to_have_url(f"{server.url}/accounts/login/?next=/attempts/")
        page.screenshot(path=ARTIFACTS / "login.png")
        page.fill("#id_username", "operator")
        page.fill("#id_password", "a long test password")
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Action attempts")
        succeed_row = page.locator(f"#attempt-{to_succeed.pk}")
        fail_row = page.locator(f"#attempt-{to_fail.pk}")
        expect(succeed_row.locator(".badge")).to_have_text("pending")
        page.screenshot(path=ARTIFACTS / "list-pending.png")

        # A hidden tab polls ten times less often (here every 10 s), and at once when shown.
        page.evaluate(
            "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
            "document.dispatchEvent(new Event('visibilitychange'))"
        )
        # A poll already on its way may still land.
        expect(page.locator("#poller")).not_to_have_class(re.compile(r"\bhtmx-request\b"))
        hidden_from = len(polls)
        page.wait_for_timeout(3_000)  # what is under test: three visible intervals without a poll
        assert len(polls) == hidden_from
        with page.expect_request("**/attempts/poll/**", timeout=5_000):
            page.evaluate(
                "delete document.hidden; document.dispatchEvent(new Event('visibilitychange'))"
            )

        # Seam ends both attempts; the page must show it without a reload.
        page.evaluate("window.notReloaded = true")
        watch_from = time.monotonic()
        fake_seam.set_attempt(to_succeed.action_attempt_id, "success", result={"ok": True})
        fake_seam.set_attempt(to_fail.action_attempt_id, "error", error=ERROR)
        expect(succeed_row.locator(".badge")).to_have_text("success", timeout=15_000)
        expect(fail_row.locator(".badge")).to_have_text("error", timeout=15_000)
        expect(fail_row).to_contain_text("The lock went offline mid-action")
        expect(fail_row).to_have_class("changed")
        assert page.evaluate("window.notReloaded") is True
        page.screenshot(path=ARTIFACTS / "list-ended-live.png")
        # Nothing in view is pending now, and the page still polls: one poll per second.
        page.wait_for_event("request", lambda r: "/attempts/poll/" in r.url, timeout=5_000)
        elapsed = time.monotonic() - watch_from
        watched = [t for t in polls if t >= watch_from]
        assert len(watched) <= elapsed + 2, (len(watched), elapsed)

        # Filter by action type: the list changes in place and the URL says so.
        page.click("summary:has-text('Action type')")
        page.check("input[name=action_type][value=UNLOCK_DOOR]")
        expect(page.locator("#attempt-rows tr")).to_have_count(1)
        expect(page.locator("#attempt-rows")).to_contain_text(older)
        expect(page).to_have_url(f"{server.url}/attempts/?action_type=UNLOCK_DOOR")
        assert page.evaluate("window.notReloaded") is True
        page.screenshot(path=ARTIFACTS / "list-filtered.png")

        # Open an error's payload: this one ended by webhook, so its page fetches it from Seam.
        page.click(f"#attempt-rows a:has-text('{older}')")
        expect(page).to_have_url(f"{server.url}/attempts/{older}/")
        expect(page.locator(".problem-box")).to_contain_text("timeout")
        expect(page.locator(".problem-box")).to_contain_text("No answer")
        expect(page.locator("#error-json")).to_contain_text('"message": "No answer"')
        page.screenshot(path=ARTIFACTS / "detail-error.png", full_page=True)

        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.context.add_cookies(page.context.cookies())
        phone.goto(f"{server.url}/attempts/")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        phone.screenshot(path=ARTIFACTS / "list-phone.png", full_page=True)
