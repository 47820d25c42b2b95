"""Open pages keep up, in a real browser (Debian's chromium, Playwright) against gunicorn: new
attempts stream in, a later page is told, a hidden tab counts new errors, notifications."""

import re
import time

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from playwright.sync_api import BrowserContext, Page, expect

from attempts.merge import Observation, merge
from attempts.models import Attempt, Source
from attempts.paging import PAGE_SIZE
from fakeseam import API_KEY
from pages.tests.test_events import event
from seam.ingest import record_event
from testing.browser import chromium, polls_handled
from testing.servers import Gunicorn, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.gunicorn]

POLL_SECONDS = 1
HIDE = (
    "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
    "document.dispatchEvent(new Event('visibilitychange'))"
)
SHOW = "delete document.hidden; document.dispatchEvent(new Event('visibilitychange'))"
# Records each desktop notification the page raises, then raises it as usual.
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  window.raised = [];
  function Recording(title, options) {
    window.raised.push({title: title, body: (options || {}).body});
    return new Real(title, options);
  }
  Object.defineProperty(Recording, "permission", {get: () => Real.permission});
  Recording.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Recording;
})();
"""


def recorded(action_attempt_id: str, status: str = "pending", action_type: str = "LOCK_DOOR"):
    obs = Observation(status=status, action_type=action_type)
    if status == "error":
        obs = Observation(
            status=status,
            action_type=action_type,
            has_payload=True,
            error={"type": "device_offline", "message": f"{action_attempt_id} went offline"},
        )
    return merge(action_attempt_id, obs, source=Source.API).attempt


def logged_in(browser, server: Gunicorn, **options) -> BrowserContext:
    client = Client()
    client.force_login(User.objects.get_or_create(username="operator")[0])
    options.setdefault("viewport", {"width": 1280, "height": 900})
    context = browser.new_context(**options)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server.url}]
    )
    return context


def until(page: Page, expression: str, timeout_ms: int) -> None:
    """Waits for an expression to hold in the page (wait_for_function would eval a string,
    which the page's CSP forbids)."""
    wait_until(lambda: page.evaluate(expression), timeout_ms / 1000, expression)


def row(page: Page, attempt: Attempt):
    return page.locator(f"#attempt-rows #attempt-{attempt.pk}")


@pytest.fixture(scope="module")
def gunicorn(django_db_setup):
    env = {"SEAM_POLL_SECONDS": str(POLL_SECONDS), "SEAM_API_KEY": ""}
    with Gunicorn(env=env) as server:
        yield server


@pytest.fixture
def server(transactional_db, gunicorn):
    """One gunicorn for the module's tests that need no Seam: each test's rows are committed,
    and emptied after it, beside the workers' connections."""
    return gunicorn


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API keeps an event loop on this thread; the test's own database writes
    # (attempts being recorded while the pages watch) are ordinary synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with chromium() as browser:
        try:
            yield browser
        finally:
            # Those writes ran in the event loop's context, on connections of their own.
            connections.close_all()


def test_new_attempts_stream_into_lists_matching_their_query(server, browser):
    old = recorded("aa_old")
    context = logged_in(browser, server)
    everything, locks = context.new_page(), context.new_page()
    everything.goto(f"{server.url}/attempts/")
    locks.goto(f"{server.url}/attempts/?action_type=LOCK_DOOR")
    for page in (everything, locks):
        expect(row(page, old)).to_be_visible()
        page.evaluate("window.notReloaded = true")

    lock = recorded("aa_lock")
    unlock = recorded("aa_unlock", "error", "UNLOCK_DOOR")

    timeout = 3 * POLL_SECONDS * 1000 + 2_000
    expect(row(everything, lock)).to_be_visible(timeout=timeout)
    expect(row(everything, unlock)).to_be_visible(timeout=timeout)
    expect(row(locks, lock)).to_be_visible(timeout=timeout)
    # At the top, newest first, highlighted; the older row stays below.
    ids = everything.locator("#attempt-rows tr").evaluate_all("rows => rows.map(r => r.id)")
    assert ids == [f"attempt-{unlock.pk}", f"attempt-{lock.pk}", f"attempt-{old.pk}"]
    expect(row(everything, unlock)).to_have_class("changed")
    # The one that does not match never shows in the filtered list.
    polls_handled(locks)
    expect(locks.locator(f"#attempt-{unlock.pk}")).to_have_count(0)
    for page in (everything, locks):
        assert page.evaluate("window.notReloaded") is True


def test_a_later_page_is_told_and_the_page_stays_bounded(server, browser):
    attempts = [recorded(f"aa_{n:03d}", "success") for n in range(PAGE_SIZE + 3)]
    context = logged_in(browser, server)
    later, first = context.new_page(), context.new_page()
    first.goto(f"{server.url}/attempts/")
    first.click("#older-link")
    expect(first).to_have_url(re.compile(r"after="))
    later.goto(first.url)
    first.goto(f"{server.url}/attempts/")
    expect(first.locator("#attempt-rows tr")).to_have_count(PAGE_SIZE)
    later_rows = later.locator("#attempt-rows tr").count()

    new = [recorded("aa_new_1"), recorded("aa_new_2")]

    notice = later.locator("#new-attempts")
    expect(notice).to_have_text("2 new attempts", timeout=5_000)
    assert later.locator("#attempt-rows tr").count() == later_rows
    expect(later.locator(f"#attempt-{new[0].pk}")).to_have_count(0)
    # The newest page takes them in and drops its oldest rows off the bottom.
    expect(row(first, new[1])).to_be_visible(timeout=5_000)
    expect(first.locator("#attempt-rows tr")).to_have_count(PAGE_SIZE)
    last_shown = attempts[-(PAGE_SIZE - 2)]
    expect(first.locator("#attempt-rows tr").last).to_have_id(f"attempt-{last_shown.pk}")
    # Its next-page link starts right after the last row shown.
    first.click("#older-link")
    expect(first.locator("#attempt-rows tr").first).to_have_id(
        f"attempt-{attempts[-(PAGE_SIZE - 1)].pk}"
    )
    # The notice on the later page leads to the newest page, with the new rows.
    notice.click()
    expect(row(later, new[1])).to_be_visible()


def test_a_scrolled_list_offers_new_attempts_rather_than_moving(server, browser):
    for n in range(PAGE_SIZE):
        recorded(f"aa_{n:03d}", "success")
    page = logged_in(browser, server, viewport={"width": 1280, "height": 500}).new_page()
    page.goto(f"{server.url}/attempts/")
    page.mouse.wheel(0, 1500)
    until(page, "window.scrollY > 400", 2_000)

    new = recorded("aa_new")

    expect(page.locator("#new-attempts")).to_have_text("1 new attempt", timeout=5_000)
    expect(row(page, new)).to_have_count(0)
    page.click("#new-attempts")
    expect(row(page, new)).to_be_visible()
    expect(page.locator("#attempt-rows tr")).to_have_count(PAGE_SIZE)
    expect(page.locator("#new-attempts")).to_be_hidden()


def test_a_hidden_tab_counts_new_errors_in_its_title(server, browser):
    pending = recorded("aa_pending")
    page = logged_in(browser, server).new_page()
    page.goto(f"{server.url}/attempts/")
    expect(row(page, pending)).to_be_visible()
    title = page.title()
    polls: list[str] = []
    page.on("request", lambda r: "/attempts/poll/" in r.url and polls.append(r.url))
    page.evaluate(HIDE)

    recorded("aa_ok", "success")
    recorded("aa_new_error", "error")
    merge(
        "aa_pending",
        Observation("error", has_payload=True, error={"type": "timeout", "message": "no"}),
        source=Source.API,
    )

    expect(page).to_have_title(f"(2) {title}", timeout=10 * POLL_SECONDS * 1000 + 3_000)
    assert "favicon-alert" in page.locator("link[rel=icon]").get_attribute("href")
    assert polls and all("hidden=1" in url for url in polls)
    page.evaluate(SHOW)
    expect(page).to_have_title(title)
    assert "favicon-alert" not in page.locator("link[rel=icon]").get_attribute("href")


def test_an_operator_who_opted_in_is_notified_of_new_errors(server, browser):
    context = logged_in(browser, server, permissions=["notifications"])
    context.add_init_script(RECORD_NOTIFICATIONS)
    page = context.new_page()
    page.goto(f"{server.url}/attempts/")
    button = page.locator("#notify-errors")
    expect(button).to_have_text("Notify me of new errors")
    button.click()
    expect(button).to_have_text("Stop notifying me of new errors")
    assert page.evaluate("localStorage.getItem('notify-new-errors')") == "on"

    recorded("aa_fine", "success")
    recorded("aa_broken", "error", "UNLOCK_DOOR")

    until(page, "window.raised.length > 0", 5_000)
    polls_handled(page)
    [note] = page.evaluate("window.raised")
    assert note["title"] == "UNLOCK_DOOR ended in error"
    assert "aa_broken went offline" in note["body"]
    # The choice is kept in the browser.
    page.reload()
    expect(page.locator("#notify-errors")).to_have_text("Stop notifying me of new errors")


@pytest.mark.django_db(transaction=True)
@pytest.mark.seam
def test_after_a_seam_outage_pages_see_seam_back_at_once(fake_seam, browser):
    action_attempt_id = fake_seam.lock_door()["action_attempt_id"]
    fake_seam.set_attempt(action_attempt_id, "pending")
    pending = recorded(action_attempt_id)
    env = {
        "SEAM_API_URL": fake_seam.url,
        "SEAM_API_KEY": API_KEY,
        "SEAM_POLL_SECONDS": str(POLL_SECONDS),
    }
    fake_seam.outage(["/action_attempts/list", "/action_attempts/get"])
    try:
        with Gunicorn(env=env) as server:
            page = logged_in(browser, server).new_page()
            page.goto(f"{server.url}/attempts/")
            # Several failures: the back-off grows, up to its 30 s cap.
            expect(page.locator("#seam-status")).to_contain_text("may be stale", timeout=15_000)
            # The third: no call to Seam for 8 s now, past the bound below.
            wait_until(lambda: "failures=3 " in server.output(), 30, "three failures")
            fake_seam.outage([])
            fake_seam.set_attempt(action_attempt_id, "success", result={"ok": True})
            back = time.monotonic()

            tracked_id = fake_seam.unlock_door()["action_attempt_id"]
            other = logged_in(browser, server).new_page()
            response = other.goto(f"{server.url}/attempts/{tracked_id}/")
            assert response.status == 200
            assert time.monotonic() - back < 5

            expect(row(page, pending).locator(".badge")).to_have_text(
                "success", timeout=(30 + POLL_SECONDS) * 1000
            )
            expect(page.locator("#seam-status")).not_to_contain_text("may be stale")
    finally:
        fake_seam.outage([])


def test_new_events_stream_into_the_events_page(server, browser):
    record_event(event("old"))
    page = logged_in(browser, server).new_page()
    page.goto(f"{server.url}/events/?event_type=action_attempt.lock_door.succeeded")
    expect(page.locator("#event-rows")).to_contain_text("evt_old")

    record_event(event("new"))
    record_event(event("other", "lock.locked"))

    expect(page.locator("#event-rows tr").first).to_contain_text("evt_new", timeout=5_000)
    expect(page.locator("#event-rows tr").first).to_have_class("changed")
    polls_handled(page)
    expect(page.locator("#event-rows")).not_to_contain_text("evt_other")
