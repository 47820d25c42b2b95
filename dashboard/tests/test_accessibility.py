"""Every page passes axe-core's WCAG 2.1 A and AA rules in Debian's chromium (npm's axe-core,
injected by the test), with what makes each page busy on it: pending, ended and stuck attempts,
an open incident's banner, the pager, events, the insights' charts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.access import Role
from alerts.evaluation import evaluate
from alerts.models import Kind, Rule
from alerts.tests.test_check_alerts import ended
from attempts.merge import Observation, merge
from attempts.models import Attempt, Source, Status, WebhookEvent
from testing.browser import chromium
from testing.oidc import NODE_DIR
from testing.servers import Gunicorn
from testing.users import user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.gunicorn]

AXE = NODE_DIR / "node_modules" / "axe-core" / "axe.min.js"
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PASSWORD = "a long test password"


def violations(page) -> list[str]:
    """axe-core's violations of the page as it is, one line per rule: its id, what it says, and
    where (the first few elements)."""
    page.evaluate(AXE.read_text())
    found = page.evaluate(
        # Also: landmarks of one kind (the two <nav>s) must have names that tell them apart.
        "rules => axe.run(document, {runOnly: {type: 'tag', values: rules},"
        " rules: {'landmark-unique': {enabled: true}}})"
        ".then(r => r.violations.map(v => [v.id, v.help, v.nodes.map(n => n.target.join(' '))]))",
        RULES,
    )
    return [f"{rule}: {help} at {', '.join(where[:3])}" for rule, help, where in found]


def busy_database() -> str:
    """Attempts of every status, stuck ones, an open incident, events; returns an attempt id."""
    long_ago = timezone.now() - timedelta(hours=2)
    for n in range(25):
        obs = Observation(status="pending", action_type="LOCK_DOOR")
        merge(f"aa_pending_{n}", obs, source=Source.WEBHOOK)
    Attempt.objects.filter(action_attempt_id__in=["aa_pending_0", "aa_pending_1"]).update(
        first_seen_at=long_ago
    )
    error = {"type": "device_offline", "message": "The lock is offline"}
    merge("aa_error", Observation("error", has_payload=True, error=error), source=Source.API)
    merge("aa_ok", Observation("success", has_payload=True, result={}), source=Source.API)
    event = WebhookEvent.objects.create(
        event_id="ev_1", event_type="action_attempt.lock_door.failed", payload={}
    )
    event.attempt = Attempt.objects.get(action_attempt_id="aa_error")
    event.save()
    ended("UNLOCK_DOOR", Status.ERROR, 10)
    Rule.objects.create(name="Error rate for the test", kind=Kind.ERROR_RATE)
    evaluate()
    return "aa_error"


@pytest.mark.django_db(transaction=True)
def test_every_page_passes_wcag_2_1_a_and_aa():
    attempt_id = busy_database()
    user_with_role(Role.ADMIN, "ada", password=PASSWORD)
    # Each page, and what must be on it for the check to mean something.
    pages = {
        "/attempts/": "[role=alert] .error, .badge.pending, .badge.stuck, nav.pager",
        "/attempts/?status=error": ".badge.error",
        f"/attempts/{attempt_id}/": ".problem-box",
        "/attempts/aa_pending_3/": ".badge.pending",
        "/events/": "[role=alert], nav.pager",
        "/alerts/": "tr.incident",
        "/insights/": "svg",
    }
    found: dict[str, list[str]] = {}
    with Gunicorn(workers=1) as server, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{server.url}/accounts/login/")
        found["/accounts/login/"] = violations(page)
        page.fill("#id_username", "ada")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/attempts/")
        for path, shown in pages.items():
            page.goto(server.url + path)
            for selector in shown.split(", "):
                assert page.locator(selector).count(), f"{path} shows no {selector}"
            found[path] = violations(page)
    assert {path: v for path, v in found.items() if v} == {}
