import json
import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO

import httpx
import pytest
from django.core.management import call_command
from django.db import connection

from attempts import rollup_reads, rollups
from attempts.merge import Observation, merge
from attempts.models import (
    Attempt,
    DailyCount,
    DailyResolution,
    HourlyCount,
    HourlyResolution,
    Source,
    Status,
    StatusChange,
)
from testing.servers import Gunicorn
from testing.webhooks import SECRET, seam_event, signed_headers

TYPES = ["LOCK_DOOR", "UNLOCK_DOOR", "SET_HVAC_MODE"]
ERRORS = ["device_offline", "lock_jammed", "hub_disconnected"]


def snapshot() -> tuple[dict, dict]:
    """The hourly rollups as {key: count}, without the counters that went back to zero; the
    daily ones checked to be their sums by day."""
    counts = {
        (r.start, r.action_type, r.status, r.error_type): r.count
        for r in HourlyCount.objects.exclude(count=0)
    }
    resolutions = {
        (r.start, r.action_type, r.status, r.error_type, r.bucket): r.count
        for r in HourlyResolution.objects.exclude(count=0)
    }
    for hourly, model, rest in (
        (counts, DailyCount, ("error_type",)),
        (resolutions, DailyResolution, ("error_type", "bucket")),
    ):
        by_day: Counter = Counter()
        for key, n in hourly.items():
            by_day[(key[0].replace(hour=0), *key[1:])] += n
        daily = {
            (r.start, r.action_type, r.status, *(getattr(r, name) for name in rest)): r.count
            for r in model.objects.exclude(count=0)
        }
        assert daily == {k: n for k, n in by_day.items() if n}
    return counts, resolutions


def assert_exact() -> None:
    incremental = snapshot()
    assert sum(incremental[0].values()) == Attempt.objects.count()
    assert all(n > 0 for n in incremental[0].values())
    call_command("rebuild_rollups", stdout=StringIO())
    assert snapshot() == incremental


@pytest.fixture(scope="module")
def server(django_db_setup):
    with Gunicorn(env={"SEAM_WEBHOOK_SECRET": SECRET}) as server:
        yield server


def deliver(server: Gunicorn, n: int, rng: random.Random, ids: list[str]) -> None:
    kind = rng.choice(["succeeded", "failed", "unknown_status"])
    at = datetime.now(UTC) - timedelta(minutes=rng.uniform(0, 72 * 60))
    event = seam_event(
        event_id=f"evt_{n}",
        event_type=f"action_attempt.lock_door.{kind}",
        action_attempt_id=rng.choice(ids),
        occurred_at=at.isoformat().replace("+00:00", "Z"),
    )
    if kind == "unknown_status":
        event["status"] = rng.choice(["pending", "success", "error"])
    body = json.dumps(event).encode()
    response = httpx.post(
        f"{server.url}/webhooks/seam/",
        content=body,
        headers=signed_headers(body, msg_id=f"msg_{n}"),
        timeout=30,
    )
    assert response.status_code == 200, response.text


def api_merge(rng: random.Random, ids: list[str]) -> None:
    status = rng.choice(Status.values)
    error = {"type": rng.choice(ERRORS), "message": "x"} if status == Status.ERROR else None
    merge(
        rng.choice(ids),
        Observation(
            status=status,
            action_type=rng.choice(TYPES),
            at=datetime.now(UTC) - timedelta(minutes=rng.uniform(0, 72 * 60)),
            has_payload=status != Status.PENDING,
            error=error,
            result={"ok": True} if status == Status.SUCCESS else None,
        ),
        source=Source.API,
    )


@pytest.mark.django_db(transaction=True)
class TestRollups:
    @pytest.mark.gunicorn
    def test_incremental_equals_rebuilt_under_a_random_concurrent_mix(self, server):
        seed = random.randrange(1 << 30)
        ids = [f"aa_{i}" for i in range(40)]
        errors: list[BaseException] = []

        def writer(k: int) -> None:
            rng = random.Random(seed + k)
            try:
                for n in range(40):
                    if rng.random() < 0.5:
                        deliver(server, k * 1000 + n, rng, ids)
                    else:
                        api_merge(rng, ids)
            except BaseException as e:  # collected, asserted below
                errors.append(e)
            finally:
                connection.close()

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert errors == [], f"seed {seed}"
        assert Attempt.objects.filter(status=Status.ERROR).exclude(error_type="").exists()
        assert Attempt.objects.exclude(ended_at=None).exists()
        assert_exact()

    def test_an_error_type_that_arrives_later_moves_the_count(self):
        merge("aa1", Observation(status="error", action_type="LOCK_DOOR"), source=Source.WEBHOOK)
        [row] = snapshot()[0].items()
        assert row[0][2:] == ("error", "") and row[1] == 1

        error = {"type": "lock_jammed", "message": "Jammed."}
        merge(
            "aa1",
            Observation(status="error", has_payload=True, error=error),
            source=Source.API,
        )

        counts, resolutions = snapshot()
        assert list(counts.values()) == [1] and list(resolutions.values()) == [1]
        [key] = counts
        assert key[2:] == ("error", "lock_jammed")
        [key] = resolutions
        assert key[2:4] == ("error", "lock_jammed")
        assert Attempt.objects.get().error_type == "lock_jammed"
        assert_exact()

    def test_a_conflict_changes_no_count(self):
        merge("aa1", Observation(status="pending", action_type="LOCK_DOOR"), source=Source.WEBHOOK)
        merge("aa1", Observation(status="success"), source=Source.WEBHOOK)
        before = snapshot()
        merge("aa1", Observation(status="error"), source=Source.WEBHOOK)
        assert snapshot() == before
        assert_exact()

    def test_rebuild_keeps_the_hours_before_the_oldest_attempt(self):
        old = datetime.now(UTC) - timedelta(days=40)
        merge("gone", Observation(status="success", at=old), source=Source.WEBHOOK)
        merge("kept", Observation(status="success"), source=Source.WEBHOOK)
        StatusChange.objects.filter(attempt__action_attempt_id="gone").delete()
        Attempt.objects.filter(action_attempt_id="gone").delete()

        call_command("rebuild_rollups", stdout=StringIO())
        assert sum(snapshot()[0].values()) == 2
        call_command("rebuild_rollups", "--all", stdout=StringIO())
        assert sum(snapshot()[0].values()) == 1


class TestBuckets:
    def test_edges_are_log_spaced_and_bucketed_alike(self):
        assert rollups.bucket_of(timedelta(0)) == 0
        assert rollups.bucket_of(timedelta(milliseconds=10)) == 1
        assert rollups.bucket_of(timedelta(days=365)) == rollups.BUCKETS - 1
        ratios = {
            round(b / a, 3) for a, b in zip(rollups.EDGES_US, rollups.EDGES_US[1:], strict=False)
        }
        assert ratios <= {1.258, 1.259, 1.26}

    def test_percentiles_come_from_summed_buckets(self):
        one_second = rollups.bucket_of(timedelta(seconds=1))
        buckets = {one_second: 95, one_second + 10: 5}
        assert rollup_reads.percentile(buckets, 0.5) == rollups.bucket_upper(one_second)
        assert rollup_reads.percentile(buckets, 0.99) == rollups.bucket_upper(one_second + 10)
        assert rollup_reads.percentile({}, 0.5) is None


@pytest.mark.django_db
class TestLoadedRollups:
    def test_a_bulk_load_is_counted_exactly(self):
        call_command("load_attempts", "3000", "--seed", "3", stdout=StringIO(), stderr=StringIO())
        errors = Attempt.objects.filter(status=Status.ERROR)
        assert errors.exists() and not errors.filter(error_type="").exists()
        assert HourlyResolution.objects.exists()
        assert_exact()
