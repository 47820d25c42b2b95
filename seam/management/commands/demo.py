"""`python manage.py demo`: Seam's fake server, and a driver that keeps attempts coming.

`make run` starts it when no SEAM_API_KEY is configured. At a human pace it starts lock and
thermostat actions on the fake, holds each pending for a while, ends it in success (with a
result) or error (with a realistic error), and delivers signed webhooks to the dashboard for the
event types Seam sends. Seam sends no webhook for an attempt while it is pending, so the driver
tells the dashboard about each attempt it starts as an API observation (as if the integrating
app had the dashboard track it): the live page then shows it pending and watches it end. Every
minute it runs `sync_attempts`, as cron would in production, which ends the attempts of the
types Seam sends no webhook for even while no page is open.
"""

import io
import json
import logging
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections
from standardwebhooks import Webhook

from attempts.filters import DEFAULT_STUCK_MINUTES
from attempts.management.commands.load_attempts import realistic_error, realistic_result
from attempts.merge import Observation, merge
from attempts.models import Attempt, Source
from fakeseam import LOCKS, WORKSPACE_ID, FakeSeam
from seam.secrets import signing_secret

log = logging.getLogger("seam.demo")

THERMOSTAT_ACTIONS = [
    ("/thermostats/cool", {"cooling_set_point_celsius": 23}),
    ("/thermostats/heat", {"heating_set_point_celsius": 20}),
    ("/thermostats/heat_cool", {"heating_set_point_celsius": 19, "cooling_set_point_celsius": 25}),
    ("/thermostats/off", {}),
    ("/thermostats/set_fan_mode", {"fan_mode_setting": "auto"}),
]
# Seam sends action_attempt.* webhooks for these types only; the others end silently.
WEBHOOK_TYPES = {"LOCK_DOOR", "UNLOCK_DOOR"}
DEVICE_DOWN_ERRORS = {"device_offline", "hub_disconnected"}
EXPIRED = {
    "type": "action_attempt_expired",
    "message": "The device did not respond before the action attempt expired.",
}
MAX_TRIES = 20


@dataclass(frozen=True)
class Pace:
    """How fast things happen, in seconds."""

    between_starts: tuple[float, float] = (3, 8)
    pending: tuple[float, float] = (4, 25)
    # A few stay pending past the list's stuck threshold, so stuck attempts show too.
    stuck_share: float = 0.05
    stuck: tuple[float, float] = (DEFAULT_STUCK_MINUTES * 60 + 60, DEFAULT_STUCK_MINUTES * 120)
    error_share: float = 0.25
    # The first few start a second apart, so a fresh page fills within a minute.
    burst: int = 5
    retry_cap: float = 60


@dataclass
class Running:
    action_attempt_id: str
    action_type: str
    device_id: str
    ends_at: float


@dataclass
class Delivery:
    svix_id: str
    body: str
    event_type: str
    next_try: float
    tries: int = 0


@dataclass
class Demo:
    """The driver's state; `step()` does whatever is due (the command calls it twice a second)."""

    seam: FakeSeam
    webhook_url: str
    secret: str
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.monotonic
    pace: Pace = field(default_factory=Pace)
    record: bool = True
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=15))
    running: list[Running] = field(default_factory=list)
    outbox: list[Delivery] = field(default_factory=list)
    started: int = 0
    next_start: float = 0.0
    thermostats: list[str] = field(default_factory=list)

    def step(self) -> None:
        now = self.clock()
        if now >= self.next_start:
            self.start_attempt()
            wait = (
                1 if self.started < self.pace.burst else self.rng.uniform(*self.pace.between_starts)
            )
            self.next_start = now + wait
        for running in [r for r in self.running if r.ends_at <= now]:
            self.running.remove(running)
            self.end_attempt(running)
        self.deliver(now)

    def start_attempt(self) -> None:
        try:
            path, body = self.pick_action()
            attempt = self.seam.call(path, body)["action_attempt"]
            # The fake ends every attempt in success at once; a real device takes a while.
            self.seam.set_attempt(attempt["action_attempt_id"], "pending")
        except (httpx.HTTPError, KeyError) as e:
            log.warning("demo could not start an attempt: %s", e)
            return
        self.started += 1
        stuck = self.rng.random() < self.pace.stuck_share
        hold = self.rng.uniform(*(self.pace.stuck if stuck else self.pace.pending))
        running = Running(
            attempt["action_attempt_id"], attempt["action_type"], body["device_id"], 0.0
        )
        running.ends_at = self.clock() + hold
        self.running.append(running)
        log.info(
            "demo started attempt=%s action_type=%s pending_for=%.0fs",
            running.action_attempt_id,
            running.action_type,
            hold,
        )
        if self.record:
            self.record_pending(attempt)

    def skip_recorded_ids(self) -> int:
        """The fake numbers its attempts from 1 each time it starts: use up the numbers an earlier
        run recorded, so no new attempt reuses an id the dashboard holds. Those left pending
        then expire, as they would have; returns how many numbers were skipped."""
        recorded = {}
        rows = Attempt.objects.filter(action_attempt_id__startswith="action_attempt")
        for aid, status, fetched, action_type in rows.values_list(
            "action_attempt_id", "status", "payload_fetched", "action_type"
        ):
            if aid.removeprefix("action_attempt").isdigit():
                recorded[int(aid.removeprefix("action_attempt"))] = (status, fetched, action_type)
        top, skipped = max(recorded, default=0), 0
        while recorded:
            aid = self.seam.lock_door()["action_attempt_id"]
            n = int(aid.removeprefix("action_attempt"))
            skipped += 1
            status, fetched, action_type = recorded.get(n, ("", True, ""))
            if status == "pending":
                self.seam.set_attempt(aid, "error", error=EXPIRED)
            elif not fetched:
                payload = (
                    {"error": realistic_error(self.rng, action_type)}
                    if status == "error"
                    else {"result": realistic_result(self.rng, action_type)}
                )
                self.seam.set_attempt(aid, status, **payload)
            if n >= top:
                break
        return skipped

    def pick_action(self) -> tuple[str, dict[str, Any]]:
        if self.rng.random() < 0.7:
            path = self.rng.choice(["/locks/lock_door", "/locks/unlock_door"])
            return path, {"device_id": self.rng.choice(LOCKS)}
        if not self.thermostats:
            listed = self.seam.call("/thermostats/list", {})["thermostats"]
            self.thermostats = [t["device_id"] for t in listed]
        path, body = self.rng.choice(THERMOSTAT_ACTIONS)
        return path, {"device_id": self.rng.choice(self.thermostats), **body}

    def record_pending(self, attempt: dict[str, Any]) -> None:
        try:
            merge(attempt["action_attempt_id"], Observation.from_api(attempt), source=Source.API)
        except DatabaseError as e:
            log.warning("demo could not record attempt=%s: %s", attempt["action_attempt_id"], e)
            close_old_connections()

    def end_attempt(self, running: Running) -> None:
        failed = self.rng.random() < self.pace.error_share
        if failed:
            payload = {"error": realistic_error(self.rng, running.action_type)}
        else:
            payload = {"result": realistic_result(self.rng, running.action_type)}
        status = "error" if failed else "success"
        try:
            self.seam.set_attempt(running.action_attempt_id, status, **payload)
        except httpx.HTTPError as e:
            log.warning("demo could not end attempt=%s: %s", running.action_attempt_id, e)
            return
        log.info(
            "demo ended attempt=%s status=%s%s",
            running.action_attempt_id,
            status,
            f" error_type={payload['error']['type']}" if failed else "",
        )
        if running.action_type not in WEBHOOK_TYPES:
            return
        verb = running.action_type.lower()
        self.send(
            f"action_attempt.{verb}.{'failed' if failed else 'succeeded'}",
            action_attempt_id=running.action_attempt_id,
            action_type=running.action_type,
            status=status,
        )
        # Seam also reports what the device did, or that it went away.
        if not failed:
            self.send(
                "lock.locked" if running.action_type == "LOCK_DOOR" else "lock.unlocked",
                device_id=running.device_id,
                action_attempt_id=running.action_attempt_id,
                method="remote",
            )
        elif payload["error"]["type"] in DEVICE_DOWN_ERRORS:
            self.send("device.disconnected", device_id=running.device_id)

    def send(self, event_type: str, **fields: Any) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event = {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "event_type": event_type,
            **fields,
            "workspace_id": WORKSPACE_ID,
            "created_at": now,
            "occurred_at": now,
        }
        svix_id = f"msg_{uuid.UUID(int=self.rng.getrandbits(128)).hex}"
        self.outbox.append(Delivery(svix_id, json.dumps(event), event_type, self.clock()))

    def deliver(self, now: float) -> None:
        """Delivers what is due, as Svix would: signed afresh on each try, retried with backoff."""
        for delivery in [d for d in self.outbox if d.next_try <= now]:
            timestamp = datetime.now(UTC)
            headers = {
                "svix-id": delivery.svix_id,
                "svix-timestamp": str(int(timestamp.timestamp())),
                "svix-signature": Webhook(self.secret).sign(
                    delivery.svix_id, timestamp, delivery.body
                ),
                "content-type": "application/json",
            }
            try:
                response = self.http.post(self.webhook_url, content=delivery.body, headers=headers)
                outcome, delivered, answered = str(response.status_code), response.is_success, True
            except httpx.HTTPError as e:
                outcome, delivered, answered = type(e).__name__, False, False
            if delivered:
                self.outbox.remove(delivery)
                log.debug("demo delivered event_type=%s status=%s", delivery.event_type, outcome)
                continue
            delivery.tries += 1
            if delivery.tries >= MAX_TRIES:
                self.outbox.remove(delivery)
                log.warning("demo gave up event_type=%s outcome=%s", delivery.event_type, outcome)
                continue
            backoff = min(2**delivery.tries, self.pace.retry_cap) * self.rng.uniform(0.8, 1.2)
            delivery.next_try = now + backoff
            log.warning(
                "demo delivery failed event_type=%s outcome=%s retry_in=%.0fs",
                delivery.event_type,
                outcome,
                backoff,
            )
            if not answered:
                # The dashboard is not answering: the other deliveries wait for the next step.
                break


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        # As node's listen() does: a restart must not wait for the last run's closed connections.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Command(BaseCommand):
    help = "Runs Seam's fake server and keeps attempts and signed webhooks coming (demo mode)."

    def add_arguments(self, parser):
        parser.add_argument("--fake-port", type=int, default=8081)
        parser.add_argument("--dashboard-url", default="http://127.0.0.1:8000")
        parser.add_argument(
            "--sync-every",
            type=float,
            default=60,
            help="run sync_attempts this often, as cron would in production (0: never)",
        )

    def handle(self, *args, fake_port: int, dashboard_url: str, sync_every: float, **options):
        secret = signing_secret(settings.SEAM_WEBHOOK_SECRET)
        if not secret:
            raise CommandError("SEAM_WEBHOOK_SECRET is not set: the demo signs webhooks with it.")
        if not port_is_free(fake_port):
            raise CommandError(f"Port {fake_port} is in use: pass another with --fake-port.")
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        webhook_url = f"{dashboard_url.rstrip('/')}/webhooks/seam/"
        with FakeSeam(port=fake_port) as seam:
            log.info("demo fake_seam=%s webhooks_to=%s", seam.url, webhook_url)
            self.wait_for_database(stop)
            demo = Demo(seam, webhook_url, secret)
            try:
                if skipped := demo.skip_recorded_ids():
                    log.info("demo skipped %d attempt ids recorded by an earlier run", skipped)
            except (httpx.HTTPError, DatabaseError) as e:
                log.warning("demo could not skip the ids recorded earlier: %s", e)
            next_sync = time.monotonic() + sync_every
            while not stop.is_set():
                try:
                    demo.step()
                    if sync_every and time.monotonic() >= next_sync:
                        next_sync = time.monotonic() + sync_every
                        # The other action types end without a webhook: this catches them
                        # even when no page is open.
                        call_command("sync_attempts", stdout=io.StringIO())
                except Exception:
                    # A demo keeps going: log what broke and try again on the next step.
                    log.exception("demo step failed")
                stop.wait(0.5)
        log.info("demo stopped")

    def wait_for_database(self, stop: threading.Event) -> None:
        """`make run` migrates while the demo starts: wait for the tables."""
        while not stop.is_set():
            try:
                Attempt.objects.exists()
                return
            except DatabaseError:
                close_old_connections()
                stop.wait(1)
