import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from attempts.models import Attempt, Status, WebhookEvent
from attempts.queries import PAGE_SIZE
from attempts.webhooks import record_event


def read_csv(response) -> list[list[str]]:
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def make_attempts(n: int) -> list[Attempt]:
    now = timezone.now()
    types = ["LOCK_DOOR", "UNLOCK_DOOR", "SET_HVAC_MODE"]
    statuses = [Status.SUCCESS, Status.ERROR, Status.PENDING, Status.ERROR]
    attempts = []
    for i in range(n):
        status = statuses[i % 4]
        attempts.append(
            Attempt(
                action_attempt_id=f"aa_{i:04d}",
                action_type=types[i % 3],
                status=status,
                first_seen_at=now - timedelta(minutes=i // 2),
                ended_at=now if status != Status.PENDING else None,
                error={"type": "device_offline", "message": "Offline."}
                if status == Status.ERROR
                else None,
                error_type="device_offline" if status == Status.ERROR else "",
            )
        )
    return Attempt.objects.bulk_create(attempts)


@pytest.mark.django_db
class TestAttemptsExport:
    def test_it_needs_a_login(self, client):
        response = client.get("/attempts/export.csv")
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]

    def test_it_exports_every_page_newest_first(self, admin_client):
        make_attempts(PAGE_SIZE * 3 + 5)
        rows = read_csv(admin_client.get("/attempts/export.csv"))
        assert ",".join(rows[0]).startswith("action_attempt_id,action_type,status")
        expected = Attempt.objects.order_by("-first_seen_at", "-id")
        assert [r[0] for r in rows[1:]] == [a.action_attempt_id for a in expected]

    def test_it_exports_exactly_the_filtered_rows(self, admin_client):
        attempts = make_attempts(200)
        url = "/attempts/export.csv?action_type=LOCK_DOOR&status=error&after=123_4"
        rows = read_csv(admin_client.get(url))
        header = rows[0]
        chosen = sorted(
            (a for a in attempts if a.action_type == "LOCK_DOOR" and a.status == Status.ERROR),
            key=lambda a: (a.first_seen_at, a.pk),
            reverse=True,
        )
        assert len(chosen) > 10
        assert [r[0] for r in rows[1:]] == [a.action_attempt_id for a in chosen]
        first = dict(zip(header, rows[1], strict=True))
        assert first["action_type"] == "LOCK_DOOR" and first["status"] == "error"
        assert first["error_type"] == "device_offline" and first["error_message"] == "Offline."

    def test_it_defuses_formulas_from_untrusted_values(self, admin_client):
        Attempt.objects.create(
            action_attempt_id="=cmd|' /C calc'!A0",
            action_type="+SUM(A1)",
            status=Status.ERROR,
            error={"type": "@evil", "message": "-2+3"},
            error_type="@evil",
        )
        header, row = read_csv(admin_client.get("/attempts/export.csv"))
        first = dict(zip(header, row, strict=True))
        assert first["action_attempt_id"] == "'=cmd|' /C calc'!A0"
        assert first["action_type"] == "'+SUM(A1)"
        assert first["error_type"] == "'@evil" and first["error_message"] == "'-2+3"

    def test_it_writes_payloads_and_durations(self, admin_client):
        now = timezone.now()
        Attempt.objects.create(
            action_attempt_id="aa_ok",
            action_type="LOCK_DOOR",
            status=Status.SUCCESS,
            first_seen_at=now - timedelta(seconds=2.5),
            ended_at=now,
            result={"was_confirmed_by_device": False},
        )
        # Untrusted payloads of any shape: an error that is not an object exports, blank.
        Attempt.objects.create(action_attempt_id="aa_odd", status=Status.ERROR, error=["x"])
        rows = read_csv(admin_client.get("/attempts/export.csv"))
        by_id = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
        assert by_id["aa_ok"]["seconds_to_resolution"] == "2.500"
        assert json.loads(by_id["aa_ok"]["result"]) == {"was_confirmed_by_device": False}
        assert by_id["aa_ok"]["first_seen_at"].startswith(str(now.year))
        assert by_id["aa_odd"]["error_type"] == "" and by_id["aa_odd"]["result"] == ""

    def test_times_are_iso_8601_in_utc_to_the_microsecond_or_second(self, admin_client):
        started = datetime(2026, 11, 3, 4, 5, 6, tzinfo=UTC)
        ended = started + timedelta(microseconds=1500)
        Attempt.objects.create(
            action_attempt_id="aa_t", status=Status.SUCCESS, first_seen_at=started, ended_at=ended
        )
        header, row = read_csv(admin_client.get("/attempts/export.csv"))
        got = dict(zip(header, row, strict=True))
        assert got["first_seen_at"] == "2026-11-03T04:05:06+00:00"
        assert got["ended_at"] == "2026-11-03T04:05:06.001500+00:00"
        assert got["seconds_to_resolution"] == "0.002"

    def test_it_rejects_invalid_filters(self, admin_client):
        response = admin_client.get("/attempts/export.csv?status=lost")
        assert response.status_code == 400
        assert b"status" in response.content and b"lost" in response.content
        assert admin_client.get("/attempts/export.csv?after=nope").status_code == 400


@pytest.mark.django_db
class TestEventsExport:
    def test_it_needs_a_login(self, client):
        assert client.get("/events/export.csv").status_code == 302

    def test_it_exports_exactly_the_filtered_rows(self, admin_client):
        for n in range(60):
            outcome = "failed" if n % 3 else "succeeded"
            record_event(
                {
                    "event_id": f"evt_{n}",
                    "event_type": f"action_attempt.lock_door.{outcome}",
                    "action_attempt_id": f"aa_{n % 7}",
                    "status": "error" if n % 3 else "success",
                }
            )
        record_event(
            {"event_id": "evt_lock", "event_type": "lock.locked", "action_attempt_id": "x"}
        )
        rows = read_csv(admin_client.get("/events/export.csv"))
        assert ",".join(rows[0]).startswith("event_id,event_type,action_attempt_id")
        everything = WebhookEvent.objects.order_by("-received_at", "-id")
        assert [r[0] for r in rows[1:]] == [e.event_id for e in everything]
        assert rows[1][:3] == ["evt_lock", "lock.locked", "x"]

        url = "/events/export.csv?event_type=action_attempt.lock_door.failed&q=aa_3"
        rows = read_csv(admin_client.get(url))
        expected = [f"evt_{n}" for n in reversed(range(60)) if n % 3 and n % 7 == 3]
        assert [r[0] for r in rows[1:]] == expected
        assert {r[2] for r in rows[1:]} == {"aa_3"}

    def test_it_rejects_invalid_filters(self, admin_client):
        response = admin_client.get("/events/export.csv?event_type=" + "x" * 300)
        assert response.status_code == 400 and b"event_type" in response.content
