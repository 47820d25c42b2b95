"""Issue 20: `rebuild_rollups` while webhooks land. It works an hour at a time, each hour holding
the write lock (SQLite) or row locks (PostgreSQL) briefly, and ends with the totals of a rebuild
on a quiet database.

Against real parts: gunicorn with two workers taking signed webhooks (new attempts and the
endings of pending ones, in the hours being rebuilt) while `manage.py rebuild_rollups` runs as a
process of its own, then the rollups compared with a count straight from the attempts.
"""

import json
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO

import httpx
import pytest
from django.core.management import call_command
from django.db.models import F

from attempts import rollups
from attempts.models import Attempt, DailyCount, HourlyCount, HourlyResolution, Status
from attempts.rebuild import rebuild
from attempts.tests.test_rollups import snapshot
from testing.servers import BASE_DIR, Gunicorn
from testing.webhooks import SECRET, seam_event, signed_headers

DAYS = 10
LOADED = 30_000
WEBHOOKS = 300


def direct_count() -> tuple[dict, dict]:
    """The rollups' hourly rows as the attempts make them, counted here."""
    counts: Counter = Counter()
    resolutions: Counter = Counter()
    fields = ("first_seen_at", "ended_at", "action_type", "status", "error_type")
    for row in Attempt.objects.values_list(*fields):
        rollups.tally(rollups.keys_of(*row), counts, resolutions)
    return dict(counts), dict(resolutions)


def drift() -> None:
    """Rollups off from their attempts, as a change by hand leaves them."""
    for model in (HourlyCount, DailyCount, HourlyResolution):
        model.objects.filter(pk__in=model.objects.order_by("?").values("pk")[:40]).update(
            count=F("count") + 3
        )
    # A row no attempt makes, in an hour the attempts span.
    a_day_ago = rollups.hour_of(datetime.now(UTC) - timedelta(days=1))
    HourlyCount.objects.create(start=a_day_ago, action_type="GONE", status="error", count=5)


class Landing:
    """Signed webhooks from a few threads, in the hours being rebuilt, until told to stop and at
    least WEBHOOKS of them have been answered; each answer's status, time and when it came."""

    def __init__(self, server: Gunicorn, pending: list[str]) -> None:
        self.server = server
        self.pending = pending
        self.answers: list[tuple[int, float, float]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.send, args=(k,)) for k in range(4)]

    def event(self, rng: random.Random, n: int) -> dict:
        at = datetime.now(UTC) - timedelta(days=rng.uniform(0, DAYS))
        outcome = rng.choice(["succeeded", "failed"])
        with self.lock:
            ending = self.pending.pop() if self.pending and rng.random() < 0.5 else None
        return seam_event(
            f"evt_rebuild_{n}",
            f"action_attempt.lock_door.{outcome}",
            ending or f"aa_rebuild_{n}",
            occurred_at=at.isoformat().replace("+00:00", "Z"),
        )

    def send(self, k: int) -> None:
        rng = random.Random(k)
        with httpx.Client(base_url=self.server.url, timeout=30) as http:
            n = k
            while not (self.stop.is_set() and len(self.answers) >= WEBHOOKS):
                body = json.dumps(self.event(rng, n)).encode()
                started = time.monotonic()
                response = http.post(
                    "/webhooks/seam/", content=body, headers=signed_headers(body, f"msg_{n}")
                )
                self.answers.append((response.status_code, time.monotonic() - started, started))
                n += len(self.threads)

    def __enter__(self) -> "Landing":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)


@pytest.mark.gunicorn
@pytest.mark.django_db(transaction=True)
def test_a_rebuild_while_webhooks_land_gives_the_totals_of_a_quiet_one(record_property):
    call_command(
        "load_attempts",
        str(LOADED),
        "--days",
        str(DAYS),
        "--pending",
        "0.1",
        "--seed",
        "20",
        stdout=StringIO(),
    )
    drift()
    pending = list(
        Attempt.objects.filter(status=Status.PENDING).values_list("action_attempt_id", flat=True)
    )
    with (
        Gunicorn(env={"SEAM_WEBHOOK_SECRET": SECRET}) as server,
        Landing(server, pending) as landing,
    ):
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "manage.py", "rebuild_rollups"],
            cwd=BASE_DIR,
            env={**server.env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        ended = time.monotonic()
        output = done.stdout + done.stderr
    assert done.returncode == 0, output
    during = [
        (status, seconds) for status, seconds, at in landing.answers if started <= at <= ended
    ]
    seconds = sorted(s for _, s, _ in landing.answers)
    figures = {
        "webhooks": len(landing.answers),
        "during_rebuild": len(during),
        "rebuild_seconds": round(ended - started, 1),
        "p50_ms": round(statistics.median(seconds) * 1000, 1),
        "max_ms": round(seconds[-1] * 1000, 1),
        "statuses": dict(Counter(status for status, _, _ in landing.answers)),
    }
    record_property("rebuild_while_webhooks_land", {**figures, "output": output.strip()})
    assert "outcome=ok" in output and "corrected=0" not in output, output
    assert len(during) >= 20, figures
    assert {status for status, _ in during} == {200}, figures
    # What merge() kept while it ran, and what it corrected, is what the attempts count.
    assert snapshot() == direct_count()
    # A second rebuild, on a quiet database, has nothing left to correct.
    assert rebuild().corrected == 0
