import base64
import json
import os
import socket
import threading
from datetime import UTC, datetime, timedelta
from io import StringIO

import httpx
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from attempts.merge import Observation, merge
from attempts.models import Attempt, HourlyCount, Source, StatusChange, WebhookEvent
from seam.ingest import InvalidEvent, record_event
from seam.webhooks import MAX_BODY_BYTES
from testing.servers import Gunicorn
from testing.webhooks import SECRET, bad_signature, deliver, seam_event, signed_headers


def raw_request(server: Gunicorn, head: str, body_parts: list[bytes]) -> int:
    """The status of a request sent byte for byte (httpx cannot lie about Content-Length)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        for part in body_parts:
            sock.sendall(part)
        response = b""
        while b"\r\n" not in response and (data := sock.recv(4096)):
            response += data
    return int(response.split(b" ", 2)[1])


def nothing_recorded() -> bool:
    return not WebhookEvent.objects.exists() and not Attempt.objects.exists()


@pytest.fixture(scope="module")
def server(django_db_setup):
    with Gunicorn(env={"SEAM_WEBHOOK_SECRET": SECRET}) as server:
        yield server


@pytest.mark.django_db(transaction=True)
@pytest.mark.gunicorn
class TestSeamWebhook:
    def test_it_records_a_new_event_and_creates_its_attempt(self, server):
        response = deliver(server, seam_event())

        assert response.status_code == 200
        assert response.json() == {"ok": True, "event_id": "evt_1", "recorded": True}
        event = WebhookEvent.objects.get()
        attempt = Attempt.objects.get()
        assert (event.event_type, event.svix_id, event.known_type) == (
            "action_attempt.lock_door.succeeded",
            "msg_1",
            True,
        )
        assert event.attempt == attempt
        assert event.payload == seam_event()
        assert event.occurred_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert (attempt.action_attempt_id, attempt.status, attempt.action_type) == (
            "aa_1",
            "success",
            "LOCK_DOOR",
        )
        assert attempt.workspace_id == "ws_1"
        assert attempt.ended_at == event.occurred_at
        # The error or result comes later, from the API.
        assert attempt.payload_fetched is False
        [change] = attempt.history.all()
        assert (change.from_status, change.to_status, change.source, change.event) == (
            "",
            "success",
            Source.WEBHOOK,
            event,
        )

    def test_it_ends_a_pending_attempt(self, server):
        merge("aa_1", Observation(status="pending"), source=Source.API)

        response = deliver(server, seam_event(event_type="action_attempt.lock_door.failed"))

        assert response.status_code == 200
        attempt = Attempt.objects.get()
        assert attempt.status == "error"
        assert attempt.action_type == "LOCK_DOOR"
        assert [(c.from_status, c.to_status) for c in attempt.history.order_by("id")] == [
            ("", "pending"),
            ("pending", "error"),
        ]

    def test_it_answers_a_retry_without_recording_again(self, server):
        assert deliver(server, seam_event()).status_code == 200

        body = json.dumps(seam_event()).encode()
        response = deliver(server, body, signed_headers(body, msg_id="msg_1"))

        assert response.status_code == 200
        assert response.json()["recorded"] is False
        assert WebhookEvent.objects.count() == 1
        assert StatusChange.objects.count() == 1

    def test_a_reused_event_id_changes_no_attempt_and_no_count(self, server):
        # The event is inserted inside the merge: a duplicate must take the merge back with it.
        assert deliver(server, seam_event()).status_code == 200

        reused = seam_event(
            event_type="action_attempt.unlock_door.failed", action_attempt_id="aa_2"
        )
        response = deliver(server, reused)

        assert response.json() == {"ok": True, "event_id": "evt_1", "recorded": False}
        assert list(Attempt.objects.values_list("action_attempt_id", "status")) == [
            ("aa_1", "success")
        ]
        assert StatusChange.objects.count() == 1
        assert HourlyCount.objects.aggregate(n=Sum("count"))["n"] == 1
        assert WebhookEvent.objects.get().attempt.action_attempt_id == "aa_1"

    def test_it_keeps_an_ended_attempt_ended(self, server):
        deliver(server, seam_event())

        stale = seam_event("evt_2", "action_attempt.lock_door.started", status="pending")
        assert deliver(server, stale).status_code == 200

        assert Attempt.objects.get().status == "success"
        assert StatusChange.objects.count() == 1

    def test_it_records_a_late_success_after_a_failure_as_a_conflict(self, server):
        deliver(server, seam_event("evt_1", "action_attempt.lock_door.failed"))

        assert deliver(server, seam_event("evt_2")).status_code == 200

        assert Attempt.objects.get().status == "error"
        conflict = StatusChange.objects.get(conflict=True)
        assert (conflict.to_status, conflict.event.event_id) == ("success", "evt_2")

    def test_it_applies_an_unknown_action_attempt_type_by_its_status(self, server):
        payload = seam_event(
            event_type="action_attempt.set_heat.succeeded", action_type="SET_HEAT", status=None
        )
        other = seam_event(
            "evt_2", "action_attempt.reticulate", action_attempt_id="aa_2", status="error"
        )

        assert deliver(server, payload).status_code == 200
        assert deliver(server, other).status_code == 200

        assert list(WebhookEvent.objects.values_list("known_type", flat=True)) == [False, False]
        assert dict(Attempt.objects.values_list("action_attempt_id", "status")) == {
            "aa_1": "success",
            "aa_2": "error",
        }
        assert Attempt.objects.get(action_attempt_id="aa_1").action_type == "SET_HEAT"

    @pytest.mark.parametrize(
        "event_type,known",
        [("device.connected", True), ("lock.unlocked", True), ("workspace.renamed", False)],
    )
    def test_it_records_other_event_types_without_applying_them(self, server, event_type, known):
        payload = {"event_id": "evt_1", "event_type": event_type, "device_id": "d1"}

        response = deliver(server, payload)

        assert response.status_code == 200
        event = WebhookEvent.objects.get()
        assert (event.known_type, event.attempt, event.payload) == (known, None, payload)
        assert not Attempt.objects.exists()

    @pytest.mark.parametrize("occurred_at", ["0001-01-01T00:00:00+01:00", "2026-13-01T00:00Z", 7])
    def test_it_records_an_event_whose_time_cannot_be_read(self, server, occurred_at):
        response = deliver(server, seam_event(occurred_at=occurred_at))

        assert response.status_code == 200
        event = WebhookEvent.objects.get()
        assert event.occurred_at is None
        assert event.attempt.status == "success"

    def test_it_logs_one_line_per_delivery_without_the_secret(self, server):
        deliver(server, seam_event(), headers={})
        deliver(server, seam_event())

        lines = [line for line in server.output().splitlines() if "svix_id=" in line]
        assert "outcome=rejected status=400" in lines[-2]
        assert "svix_id=msg_1 event_type=action_attempt.lock_door.succeeded" in lines[-1]
        assert "outcome=recorded status=200 duration_ms=" in lines[-1]
        assert SECRET.removeprefix("whsec_") not in server.output()

    def test_it_rejects_get(self, server):
        assert httpx.get(f"{server.url}/webhooks/seam/").status_code == 405

    @pytest.mark.parametrize(
        "change,status,reason",
        [
            (bad_signature, 401, "No matching signature found"),
            (lambda h: {**h, "svix-signature": "v1,"}, 401, "No matching signature found"),
            (lambda h: {**h, "svix-signature": "v2," + h["svix-signature"][3:]}, 401, "No"),
            (lambda h: {**h, "svix-signature": "v1" + h["svix-signature"][3:]}, 400, "malformed"),
            (lambda h: {**h, "svix-signature": "v1,a,b"}, 400, "malformed"),
            (lambda h: {**h, "svix-signature": "v1,not*base64"}, 400, "malformed"),
            (lambda h: {**h, "svix-signature": "v1,abc"}, 400, "malformed"),
            (
                lambda h: {**h, "svix-signature": "v1,YWJj  " + h["svix-signature"]},
                400,
                "malformed",
            ),
            (lambda h: {**h, "svix-timestamp": "soon"}, 401, "Invalid Signature Headers"),
            (lambda h: {**h, "svix-timestamp": "nan"}, 401, "Invalid Signature Headers"),
            (lambda h: {**h, "svix-timestamp": "1e400"}, 401, "Invalid Signature Headers"),
            (lambda h: {**h, "svix-timestamp": "9" * 30}, 401, "Invalid Signature Headers"),
            (lambda h: {**h, "svix-id": "msg_2"}, 401, "No matching signature found"),
            (lambda h: {k: v for k, v in h.items() if k != "svix-signature"}, 400, "missing"),
            (lambda h: {k: v for k, v in h.items() if k != "svix-id"}, 400, "missing"),
            (lambda h: {}, 400, "missing header svix-id, svix-timestamp, svix-signature"),
        ],
    )
    def test_it_rejects_a_bad_or_malformed_signature(self, server, change, status, reason):
        body = json.dumps(seam_event()).encode()

        response = deliver(server, body, change(signed_headers(body)))

        assert response.status_code == status
        assert response.json()["ok"] is False
        assert reason in response.json()["error"]
        assert nothing_recorded()

    def test_it_rejects_a_signature_made_with_another_secret(self, server):
        body = json.dumps(seam_event()).encode()
        other = "whsec_" + base64.b64encode(os.urandom(24)).decode()

        response = deliver(server, body, signed_headers(body, secret=other))

        assert response.status_code == 401
        assert nothing_recorded()

    @pytest.mark.parametrize("minutes,reason", [(-6, "too old"), (6, "too new")])
    def test_it_rejects_a_timestamp_over_five_minutes_off(self, server, minutes, reason):
        body = json.dumps(seam_event()).encode()
        at = datetime.now(UTC) + timedelta(minutes=minutes)

        response = deliver(server, body, signed_headers(body, at=at))

        assert response.status_code == 401
        assert reason in response.json()["error"]
        assert nothing_recorded()

    @pytest.mark.parametrize(
        "body,reason",
        [
            (b"not json", "body is not JSON"),
            (b'{"event_id": NaN}', "body is not JSON"),
            (b"[" * 100_000, "body is not JSON"),
            (b'["evt_1"]', "body is not a JSON object"),
            (b'{"event_type": "device.connected"}', "event_id missing"),
            (b'{"event_id": 7, "event_type": "device.connected"}', "event_id missing"),
            (b'{"event_id": "evt_1"}', "event_type missing"),
            (b'{"event_id": "evt_1", "event_type": ["x"]}', "event_type missing"),
            (json.dumps({"event_id": "e" * 256, "event_type": "x"}).encode(), "event_id"),
            (b'{"event_id": "\\ud800", "event_type": "x"}', "event_id missing"),
            (b'{"event_id": "e\\u0000", "event_type": "x"}', "event_id missing"),
            (b"", "body is not JSON"),
        ],
    )
    def test_it_rejects_a_signed_body_that_is_not_an_event(self, server, body, reason):
        response = deliver(server, body)

        assert response.status_code == 400
        assert reason in response.json()["error"]
        assert nothing_recorded()

    def test_it_rejects_a_body_that_is_not_utf8(self, server):
        body = b'{"event_id": "\xff"}'
        headers = signed_headers(b"")
        headers["svix-signature"] = "v1,abc="

        response = deliver(server, body, headers)

        assert response.status_code == 400
        assert response.json()["error"] == "body is not UTF-8"

    def test_it_rejects_what_postgresql_cannot_store(self, server):
        body = json.dumps(seam_event(note="\u0000")).encode()

        response = deliver(server, body)

        # SQLite stores it; PostgreSQL refuses a \u0000 in JSON: a 400, never a 500.
        stored = connection.vendor == "sqlite"
        assert response.status_code == (200 if stored else 400)
        assert WebhookEvent.objects.count() == int(stored)

    def test_it_answers_413_from_content_length_without_reading_the_body(self, server):
        head = (
            "POST /webhooks/seam/ HTTP/1.1\nHost: 127.0.0.1\n"
            f"Content-Length: {MAX_BODY_BYTES + 1}\n"
        )
        assert raw_request(server, head, [b"{"]) == 413
        assert nothing_recorded()

    def test_it_answers_413_for_a_chunked_body_over_the_limit(self, server):
        head = "POST /webhooks/seam/ HTTP/1.1\nHost: 127.0.0.1\nTransfer-Encoding: chunked\n"
        chunk = b"x" * 65536
        parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (MAX_BODY_BYTES // len(chunk) + 1)

        assert raw_request(server, head, parts) == 413
        assert nothing_recorded()

    def test_it_reads_a_chunked_body_under_the_limit(self, server):
        body = json.dumps(seam_event()).encode()
        headers = signed_headers(body)

        response = httpx.post(
            f"{server.url}/webhooks/seam/", content=iter([body[:10], body[10:]]), headers=headers
        )

        assert response.status_code == 200
        assert WebhookEvent.objects.count() == 1

    def test_it_answers_503_without_a_secret(self):
        with Gunicorn(env={"SEAM_WEBHOOK_SECRET": ""}, workers=1) as secretless:
            response = deliver(secretless, seam_event())

        assert response.status_code == 503
        assert response.json()["error"] == "SEAM_WEBHOOK_SECRET is not configured"
        assert nothing_recorded()

    def test_the_same_events_from_many_threads_are_recorded_once(self, server):
        # Each thread delivers both events: a success and a conflicting failure of one attempt.
        succeeded = json.dumps(seam_event("evt_1")).encode()
        failed = json.dumps(seam_event("evt_2", "action_attempt.lock_door.failed")).encode()
        barrier = threading.Barrier(8)
        statuses = []

        def send(first: bytes, second: bytes) -> None:
            barrier.wait()
            for body in (first, second):
                statuses.append(deliver(server, body).status_code)

        threads = [
            threading.Thread(
                target=send, args=(succeeded, failed) if i % 2 else (failed, succeeded)
            )
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert statuses == [200] * 16
        assert sorted(WebhookEvent.objects.values_list("event_id", flat=True)) == ["evt_1", "evt_2"]
        attempt = Attempt.objects.get()
        [applied, conflict] = attempt.history.order_by("conflict")
        assert (applied.from_status, applied.to_status, applied.conflict) == (
            "",
            attempt.status,
            False,
        )
        assert conflict.conflict
        assert {applied.to_status, conflict.to_status} == {"success", "error"}
        assert {applied.event.event_id, conflict.event.event_id} == {"evt_1", "evt_2"}


@pytest.mark.django_db
class TestRecordEvent:
    def test_it_records_an_event_from_the_events_list_once(self):
        event, created = record_event(seam_event())
        again, created_again = record_event(seam_event(), svix_id="msg_9")

        assert (created, created_again) == (True, False)
        assert again == event
        assert event.svix_id == ""
        assert Attempt.objects.get().status == "success"

    def test_it_refuses_a_payload_it_cannot_record(self):
        with pytest.raises(InvalidEvent, match="event_type missing"):
            record_event({"event_id": "evt_1"})
        assert not WebhookEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.gunicorn
class TestWhilePruneDeletes:
    """Svix never waits on a retention run: prune deletes in batches between deliveries."""

    def test_webhooks_keep_landing_while_it_deletes(self, server):
        for n in range(600):
            record_event(seam_event(event_id=f"old_{n}", action_attempt_id=f"old_{n}"))
        WebhookEvent.objects.update(received_at=timezone.now() - timedelta(days=40))
        StatusChange.objects.update(at=timezone.now() - timedelta(days=40))
        answered: list[int] = []
        done = threading.Event()

        def deliver() -> None:
            n = 0
            while not done.is_set() or n < 20:
                body = json.dumps(seam_event(event_id=f"new_{n}", action_attempt_id=f"new_{n}"))
                response = httpx.post(
                    f"{server.url}/webhooks/seam/",
                    content=body.encode(),
                    headers=signed_headers(body.encode(), msg_id=f"m{n}"),
                    timeout=30,
                )
                answered.append(response.status_code)
                n += 1
            connection.close()

        thread = threading.Thread(target=deliver)
        thread.start()
        try:
            call_command("prune", "--event-days", "30", "--batch-size", "50", stdout=StringIO())
        finally:
            done.set()
            thread.join(timeout=120)

        assert set(answered) == {200}
        assert WebhookEvent.objects.filter(event_id__startswith="old_").count() == 0
        assert WebhookEvent.objects.filter(event_id__startswith="new_").count() == len(answered)
