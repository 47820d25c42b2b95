"""The banner and /alerts/ in a real browser (Debian's chromium), served by gunicorn."""

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import expect

from alerts.evaluation import evaluate
from alerts.tests.test_check_alerts import ended
from attempts.models import Status
from testing.browser import chromium
from testing.servers import Gunicorn

pytestmark = [pytest.mark.browser, pytest.mark.gunicorn]

ARTIFACTS = settings.BASE_DIR / "test-artifacts"


@pytest.mark.django_db(transaction=True)
def test_an_operator_follows_the_banner_to_the_incident():
    ARTIFACTS.mkdir(exist_ok=True)
    User.objects.create_user("operator", password="a long test password")
    ended("LOCK_DOOR", Status.ERROR, 10)
    evaluate()
    with Gunicorn() as server, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on(
            "console",
            lambda m: (
                m.type == "error"
                and "Failed to load resource" not in m.text
                and problems.append(m.text)
            ),
        )
        # The browser asks for /favicon.ico on its own; every other request must succeed.
        page.on(
            "response",
            lambda r: r.status >= 400 and "favicon" not in r.url and problems.append(r.url),
        )
        page.goto(f"{server.url}/attempts/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", "a long test password")
        page.click("button[type=submit]")
        banner = page.locator("[role=alert]")
        expect(banner).to_contain_text("1 open incident: Error rate (LOCK_DOOR)")
        page.screenshot(path=ARTIFACTS / "alerts-banner.png")
        banner.get_by_role("link", name="See the alerts").click()
        expect(page.locator("h1")).to_have_text("Alerts")
        row = page.locator("tr.incident").first
        expect(row).to_contain_text("LOCK_DOOR")
        expect(row).to_contain_text("10 of 10 LOCK_DOOR attempts ended in error")
        page.screenshot(path=ARTIFACTS / "alerts-page.png")
        row.get_by_role("link").click()
        expect(page).to_have_url(
            f"{server.url}/attempts/?action_type=LOCK_DOOR&status=error&last=1h"
        )
        assert problems == []  # no CSP violation, no failed script
