import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache

from attempts.merge import Observation, merge
from attempts.models import Source, Status
from attempts.rebuild import rebuild
from dashboard import shared
from dashboard.tests.test_csp import assert_policy


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_user("operator"))
    return client


def attempt(aid: str, status: str, hours_ago: float, took: float = 2.0, **kw) -> None:
    """An attempt first seen `hours_ago`, ended `took` seconds later by the API."""
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    action_type = kw.pop("action_type", "LOCK_DOOR")
    merge(aid, Observation(status="pending", action_type=action_type, at=at), source=Source.WEBHOOK)
    if status == Status.PENDING:
        return
    merge(
        aid,
        Observation(status=status, at=at + timedelta(seconds=took), has_payload=True, **kw),
        source=Source.API,
    )


def text(response) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", response.content.decode()))


@pytest.mark.django_db
class TestInsights:
    def test_it_needs_a_login(self, client):
        response = client.get("/insights/")
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]

    def test_it_shows_trends_errors_resolution_and_pending_as_text(self, operator):
        for n in range(6):
            attempt(f"ok{n}", "success", hours_ago=2, took=1.5)
        attempt("bad1", "error", 3, error={"type": "device_offline", "message": "x"})
        attempt("bad2", "error", 3, error={"type": "device_offline", "message": "x"})
        attempt("bad3", "error", 3, error={"type": "lock_jammed", "message": "x"})
        attempt("slow", "success", 5, took=600)
        attempt("waiting/1", "pending", 20)

        response = operator.get("/insights/")

        assert response.status_code == 200
        body = response.content.decode()
        words = text(response)
        # Each bar's numbers, as its <title> and in the table.
        assert re.search(r"<title>[^<]*: 6 success, 0 error, 0 pending</title>", body)
        assert re.search(r"<title>[^<]*: 0 success, 3 error, 0 pending</title>", body)
        assert "100.0%" in words and "0.0%" in words
        assert body.count('class="seg-success"') >= 2
        # Top error types, linked to the list with the same filters.
        assert words.index("device_offline") < words.index("lock_jammed")
        assert 'href="/attempts/?last=24h&amp;status=error&amp;error_type=device_offline"' in body
        # Time to resolution: most took 1.5 s, one 10 minutes.
        [row] = [r for r in response.context["report"]["resolution"] if r["ended"] == 10]
        assert row["action_type"] == "LOCK_DOOR"
        assert row["p50"] == "≤ " + "1.6 s"
        assert row["p99"].startswith("≤ 12 min") or row["p99"].startswith("≤ 10 min")
        # The oldest pending attempt, linked even with a / in its id.
        assert 'href="/attempts/waiting%2F1/"' in body

    def test_the_page_keeps_to_the_strict_csp(self, operator):
        attempt("a", "success", 1)
        response = operator.get("/insights/")
        body = response.content.decode()
        assert_policy(response)
        assert "'unsafe-inline'" not in response["Content-Security-Policy"]
        assert not re.search(r"<script(?![^>]*\bsrc=)", body)
        assert "<style" not in body and " style=" not in body

    def test_the_filters_narrow_every_figure(self, operator):
        attempt("l1", "error", 1, error={"type": "device_offline", "message": "x"})
        attempt("t1", "error", 1, action_type="SET_HVAC_MODE", error={"type": "x", "message": ""})

        report = operator.get("/insights/?action_type=SET_HVAC_MODE").context["report"]

        assert [e["error_type"] for e in report["errors"]] == ["x"]
        assert [r["action_type"] for r in report["resolution"]] == ["SET_HVAC_MODE"]
        assert sum(row["total"] for row in report["trend"]["table"]) == 1
        report = operator.get("/insights/?error_type=device_offline").context["report"]
        assert sum(row["error"] for row in report["trend"]["table"]) == 1

    def test_an_error_type_narrows_the_resolution_times(self, operator):
        for n in range(3):
            attempt(f"fast{n}", "error", 2, took=1.5, error={"type": "device_offline"})
        attempt("slow", "error", 2, took=600, error={"type": "lock_jammed", "message": "x"})
        attempt("ok", "success", 2, took=30)

        def resolution(query: str) -> list[tuple[str, int, str, str]]:
            report = operator.get(f"/insights/{query}").context["report"]
            return [
                (r["action_type"], r["ended"], r["p50"], r["p99"]) for r in report["resolution"]
            ]

        fast, slow = "≤ 1.6 s", resolution("?error_type=lock_jammed")[0][2]
        assert slow.startswith("≤ 10 min") or slow.startswith("≤ 12 min")
        assert resolution("?error_type=device_offline") == [("LOCK_DOOR", 3, fast, fast)]
        assert resolution("?error_type=lock_jammed") == [("LOCK_DOOR", 1, slow, slow)]
        both = resolution("?error_type=device_offline&error_type=lock_jammed")
        assert both == [("LOCK_DOOR", 4, fast, slow)]
        assert resolution("")[0][1] == 5

    def test_past_seven_days_a_bar_is_a_day(self, operator):
        attempt("old", "success", 24 * 20)
        attempt("new", "success", 1)

        trend = operator.get("/insights/?last=30d").context["report"]["trend"]

        assert trend["per"] == "day"
        assert len(trend["table"]) in (30, 31)
        assert sum(row["success"] for row in trend["table"]) == 2
        hourly = operator.get("/insights/?last=7d").context["report"]["trend"]
        assert hourly["per"] == "hour" and len(hourly["table"]) == 7 * 24

    def test_trends_outlive_the_attempts(self, operator):
        attempt("a", "success", 1)
        before = operator.get("/insights/").context["report"]["trend"]["table"]
        rebuild()  # keeps hours before the oldest attempt: none here, so same figures
        cache.clear()
        assert operator.get("/insights/").context["report"]["trend"]["table"] == before

    def test_viewers_share_a_report_for_half_a_minute(self, operator, monkeypatch):
        attempt("a", "success", 1)
        first = operator.get("/insights/").context["report"]
        attempt("b", "success", 1)
        assert operator.get("/insights/").context["report"] == first

        monkeypatch.setattr(shared, "STATS_SECONDS", 0)
        later = operator.get("/insights/").context["report"]
        assert later["computed_at"] > first["computed_at"]
        assert sum(row["success"] for row in later["trend"]["table"]) == 2

    def test_bad_filters_get_a_readable_400(self, operator):
        response = operator.get("/insights/?last=9y&since=nope")
        assert response.status_code == 400
        assert "last" in text(response) and "since" in text(response)

    def test_htmx_gets_the_report_alone(self, operator):
        response = operator.get("/insights/", headers={"HX-Request": "true", "HX-Target": "report"})
        assert response.content.decode().startswith('<div id="report">')
        assert "HX-Request" in response["Vary"]


@pytest.mark.django_db
class TestErrorRateChart:
    def test_a_lone_hour_with_ended_attempts_gets_a_dot(self, operator):
        attempt("ok", "success", hours_ago=0)
        attempt("bad", "error", hours_ago=0, error={"type": "device_offline", "message": "x"})
        trend = operator.get("/insights/?last=1h").context["report"]["trend"]
        [dot] = trend["rate_dots"]
        assert (dot["percent"], dot["y"]) == ("50.0", "80.0")
        assert dot["text"].endswith(": 50.0 % error rate (1 error of 2 ended)")
        assert trend["rate_lines"] == []

    def test_hours_apart_get_no_line_across_the_gap(self, operator):
        for hours_ago in (2, 4, 5):
            attempt(f"ok{hours_ago}", "success", hours_ago=hours_ago)
        attempt("waiting", "pending", hours_ago=3)  # an hour with nothing ended
        trend = operator.get("/insights/?last=24h").context["report"]["trend"]
        dots = trend["rate_dots"]
        assert len(dots) == 3
        # One line through the two neighbouring hours; the lone one is a dot only.
        [line] = trend["rate_lines"]
        assert line.count(",") == 2
        body = operator.get("/insights/?last=24h").content.decode()
        assert body.count('class="rate-dot"') == 3

    def test_the_words_say_what_the_figures_are(self, operator):
        attempt("bad", "error", hours_ago=1, error={"type": "device_offline", "message": "x"})
        body = operator.get("/insights/").content.decode()
        assert 'aria-label="1 error"' in body and "1 errors" not in body
        assert "Not narrowed by error type" not in body
        assert "tallest bar 1 attempt " in body
        empty = operator.get("/insights/?action_type=NONE_SUCH").content.decode()
        assert "tallest bar 0 attempts" in empty and "Nothing ended in this range." in empty
