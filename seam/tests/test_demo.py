import json
import random
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import CommandError, call_command
from standardwebhooks import Webhook, WebhookVerificationError

from attempts.models import Attempt, Status, WebhookEvent
from fakeseam import FakeSeam, free_port
from seam.management.commands.demo import Demo, Pace
from testing.servers import Gunicorn

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver:
    """A webhook endpoint on loopback that verifies each delivery as the dashboard would."""

    def __init__(self, refusals: int = 0) -> None:
        self.deliveries: list[dict] = []
        self.refusals = refusals
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {
                    name.replace("svix-", "webhook-"): self.headers[name]
                    for name in ("svix-id", "svix-timestamp", "svix-signature")
                }
                try:
                    Webhook(SECRET).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
                tries = [d for d in receiver.deliveries if d["id"] == headers["webhook-id"]]
                code = 503 if len(tries) < receiver.refusals else 204
                receiver.deliveries.append(
                    {"id": headers["webhook-id"], "event": json.loads(body), "ok": verified}
                )
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/seam/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


FAST = Pace(between_starts=(1, 1), pending=(2, 6), stuck_share=0, error_share=0.4, retry_cap=4)


def run(demo: Demo, clock: Clock, starts: int, steps: int = 200) -> None:
    """Steps the driver one simulated second at a time until `starts` attempts have ended and
    every delivery is done."""
    for _ in range(steps):
        if demo.started >= starts:
            demo.next_start = float("inf")
            if not demo.running and not demo.outbox:
                return
        demo.step()
        clock.now += 1
    raise AssertionError(f"still running: {demo.running}, outbox: {demo.outbox}")


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.mark.django_db
@pytest.mark.seam
class TestDemo:
    def test_attempts_end_and_webhooks_are_signed(self, fake_seam, receiver):
        clock = Clock()
        demo = Demo(fake_seam, receiver.url, SECRET, rng=random.Random(3), clock=clock, pace=FAST)
        run(demo, clock, starts=12)

        recorded = list(Attempt.objects.all())
        assert len(recorded) == 12
        # The dashboard learned of each as pending; only the API or a webhook tells the rest.
        assert {a.status for a in recorded} == {Status.PENDING}
        ended = {}
        for attempt in recorded:
            answer = fake_seam.call(
                "/action_attempts/get", {"action_attempt_id": attempt.action_attempt_id}
            )["action_attempt"]
            assert answer["status"] in ("success", "error")
            if answer["status"] == "error":
                assert answer["error"]["type"] and answer["error"]["message"]
            else:
                assert isinstance(answer["result"], dict)
            ended[answer["action_attempt_id"]] = answer
        statuses = {a["status"] for a in ended.values()}
        types = {a["action_type"] for a in ended.values()}
        assert statuses == {"success", "error"}
        assert {"LOCK_DOOR", "UNLOCK_DOOR"} & types and types - {"LOCK_DOOR", "UNLOCK_DOOR"}

        assert receiver.deliveries and all(d["ok"] for d in receiver.deliveries)
        action_events = [
            d["event"]
            for d in receiver.deliveries
            if d["event"]["event_type"].startswith("action_attempt.")
        ]
        locks = {i for i, a in ended.items() if a["action_type"] in ("LOCK_DOOR", "UNLOCK_DOOR")}
        assert sorted(e["action_attempt_id"] for e in action_events) == sorted(locks)
        for event in action_events:
            attempt = ended[event["action_attempt_id"]]
            verb = attempt["action_type"].lower()
            outcome = "succeeded" if attempt["status"] == "success" else "failed"
            assert event["event_type"] == f"action_attempt.{verb}.{outcome}"
            assert event["status"] == attempt["status"]
            assert {"event_id", "workspace_id", "created_at", "occurred_at"} <= set(event)
        assert len({d["event"]["event_id"] for d in receiver.deliveries}) == len(
            receiver.deliveries
        )

    def test_it_retries_a_refused_delivery_with_the_same_id(self, fake_seam):
        receiver = Receiver(refusals=2)
        try:
            clock = Clock()
            pace = Pace(between_starts=(1, 1), pending=(1, 1), stuck_share=0, retry_cap=4)
            demo = Demo(fake_seam, receiver.url, SECRET, rng=random.Random(1), clock=clock)
            demo.pace, demo.record = pace, False
            # A lock attempt, so that it ends with a webhook.
            demo.pick_action = lambda: ("/locks/lock_door", {"device_id": "august_device_1"})
            run(demo, clock, starts=1)
        finally:
            receiver.close()
        first = receiver.deliveries[0]
        tries = [d for d in receiver.deliveries if d["id"] == first["id"]]
        assert len(tries) == 3 and all(d["ok"] for d in tries)
        assert first["event"]["event_type"] == "action_attempt.lock_door.succeeded"

    def test_it_keeps_going_while_the_dashboard_is_down(self, fake_seam):
        clock = Clock()
        closed = f"http://127.0.0.1:{free_port()}/webhooks/seam/"
        demo = Demo(fake_seam, closed, SECRET, rng=random.Random(2), clock=clock, pace=FAST)
        demo.record = False
        demo.pick_action = lambda: ("/locks/unlock_door", {"device_id": "august_device_2"})
        for _ in range(30):
            demo.step()
            clock.now += 1
        assert demo.started >= 20 and len(demo.outbox) >= 10
        # One try per step at most while it is down, backing off: no storm of connections.
        assert 1 <= sum(d.tries for d in demo.outbox) <= 30


@pytest.mark.django_db(transaction=True)
@pytest.mark.gunicorn
@pytest.mark.seam
class TestDemoWithTheDashboard:
    def test_its_webhooks_end_the_lock_attempts_it_started(self, fake_seam):
        clock = Clock()
        with Gunicorn(env={"SEAM_WEBHOOK_SECRET": SECRET}, workers=1) as server:
            demo = Demo(
                fake_seam,
                f"{server.url}/webhooks/seam/",
                SECRET,
                rng=random.Random(5),
                clock=clock,
                pace=FAST,
            )
            run(demo, clock, starts=8)
        attempts = {a.action_attempt_id: a for a in Attempt.objects.all()}
        assert len(attempts) == 8
        locks = [a for a in attempts.values() if a.action_type in ("LOCK_DOOR", "UNLOCK_DOOR")]
        others = [a for a in attempts.values() if a not in locks]
        assert locks and others
        for attempt in locks:
            answer = fake_seam.call(
                "/action_attempts/get", {"action_attempt_id": attempt.action_attempt_id}
            )["action_attempt"]
            assert attempt.status == answer["status"] != Status.PENDING
            assert attempt.events.filter(known_type=True).count() == 1
        # Seam sends no webhook for the other types: only the API will tell the dashboard.
        assert {a.status for a in others} == {Status.PENDING}
        assert WebhookEvent.objects.filter(event_type__startswith="lock.").exists()


@pytest.mark.django_db
@pytest.mark.seam
class TestDemoRestarted:
    def test_it_never_reuses_an_id_an_earlier_run_recorded(self):
        Attempt.objects.create(action_attempt_id="action_attempt1", action_type="LOCK_DOOR")
        Attempt.objects.create(
            action_attempt_id="action_attempt2", status=Status.SUCCESS, payload_fetched=True
        )
        Attempt.objects.create(
            action_attempt_id="action_attempt4", action_type="UNLOCK_DOOR", status=Status.ERROR
        )
        # A fresh fake numbers from 1 again, as after `make run` is restarted.
        with FakeSeam() as seam:
            demo = Demo(seam, "http://127.0.0.1:9/", SECRET, rng=random.Random(4), pace=FAST)
            assert demo.skip_recorded_ids() == 4
            demo.start_attempt()

            def get(n: int) -> dict:
                body = {"action_attempt_id": f"action_attempt{n}"}
                return seam.call("/action_attempts/get", body)["action_attempt"]

            # Left pending by the earlier run: it expired. Ended without its payload: it has one.
            assert get(1)["status"] == "error"
            assert get(1)["error"]["type"] == "action_attempt_expired"
            assert get(4)["status"] == "error" and get(4)["error"]["message"]
        assert Attempt.objects.get(action_attempt_id="action_attempt5").status == Status.PENDING
        assert Attempt.objects.count() == 4


class TestDemoCommand:
    def test_it_needs_the_webhook_secret(self, settings):
        settings.SEAM_WEBHOOK_SECRET = ""
        with pytest.raises(CommandError, match="SEAM_WEBHOOK_SECRET"):
            call_command("demo", "--fake-port", str(free_port()))

    def test_it_says_when_the_port_is_taken(self, settings):
        settings.SEAM_WEBHOOK_SECRET = SECRET
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(CommandError, match=f"Port {port} is in use"):
                call_command("demo", "--fake-port", str(port))
