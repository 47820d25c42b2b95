import random
from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from attempts.counts import counted, stuck_count
from attempts.filters import filtered_attempts, since_of
from attempts.merge import Observation, merge
from attempts.models import Attempt, DailyCount, HourlyCount, Source

TYPES = ["LOCK_DOOR", "UNLOCK_DOOR", "SET_HVAC_MODE", "CREATE_ACCESS_CODE", "NOT_A_TYPE"]
STATUSES = ["pending", "success", "error"]
ERRORS = ["device_offline", "lock_jammed", "hvac_mode_not_supported", "nope"]


def random_filters(rng: random.Random, now) -> dict:
    def some(values: list[str]) -> list[str] | None:
        return rng.sample(values, rng.randint(1, len(values))) if rng.random() < 0.4 else None

    filters = {
        "action_type": some(TYPES),
        "status": some(STATUSES),
        "error_type": some(ERRORS),
        "q": None,
        "last": rng.choice([None, None, "1h", "24h", "7d", "30d"]),
        "since": None,
        "until": None,
    }
    for name in ("since", "until"):
        if rng.random() < 0.4:
            at = now - timedelta(minutes=rng.uniform(0, 35 * 24 * 60))
            # On an hour's boundary sometimes: then no edge is read from the attempts.
            filters[name] = (
                at.replace(minute=0, second=0, microsecond=0) if rng.random() < 0.3 else at
            )
    if filters["since"] and filters["until"] and filters["since"] > filters["until"]:
        filters["since"], filters["until"] = filters["until"], filters["since"]
    return filters


def direct(filters: dict, now) -> Counter:
    """The same counts, straight from the attempts."""
    qs = filtered_attempts({**filters, "last": None}).order_by()
    if since := since_of(filters, now):
        qs = qs.filter(first_seen_at__gte=since)
    rows = qs.values_list("action_type", "status").annotate(n=Count("id"))
    return Counter({(t, s): n for t, s, n in rows})


def summed(rows) -> Counter:
    total: Counter = Counter()
    for t, s, n in rows:
        total[(t, s)] += n
    return Counter({k: v for k, v in total.items() if v})


@pytest.mark.django_db
class TestCountsFromRollups:
    def test_they_are_exact_for_any_filters(self):
        call_command("load_attempts", "4000", "--seed", "11", stdout=StringIO(), stderr=StringIO())
        now = timezone.now()
        seed = random.randrange(1 << 30)
        rng = random.Random(seed)
        for _ in range(150):
            filters = random_filters(rng, now)
            assert summed(counted(filters, now)) == direct(filters, now), (seed, filters)

    def test_the_stuck_count_is_exact_for_any_filters(self):
        call_command("load_attempts", "3000", "--seed", "12", "--pending", "0.3", stdout=StringIO())
        now = timezone.now()
        seed = random.randrange(1 << 30)
        rng = random.Random(seed)
        for _ in range(150):
            filters = random_filters(rng, now)
            before = now - timedelta(minutes=rng.choice([15, 60, rng.uniform(1, 48 * 60)]))
            qs = filtered_attempts({**filters, "last": None})
            if since := since_of(filters, now):
                qs = qs.filter(first_seen_at__gte=since)
            expected = qs.filter(status="pending", first_seen_at__lt=before).count()
            pending = sum(n for _, status, n in counted(filters, now) if status == "pending")
            assert stuck_count(filters, now, before, pending) == expected, (seed, filters, before)

    def test_whole_hours_are_read_from_the_rollups(self):
        call_command("load_attempts", "500", "--seed", "5", stdout=StringIO(), stderr=StringIO())
        now = timezone.now()
        # The attempts' table answers only for the partial hours: wipe the rollups, and only
        # the edge hours are still counted.
        HourlyCount.objects.all().delete()
        DailyCount.objects.all().delete()
        since = (now - timedelta(days=20)).replace(minute=40)
        rows = counted({"since": since, "until": None, "last": None}, now)
        start = since.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        assert (
            sum(n for _, _, n in rows)
            == Attempt.objects.filter(first_seen_at__gte=since, first_seen_at__lt=start).count()
        )

    def test_most_of_an_hour_is_its_rollup_less_the_attempts_outside(self):
        hour = (timezone.now() - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
        for minute in (5, 15, 35, 50):
            merge(
                f"aa_{minute}",
                Observation(
                    status="success", action_type="LOCK_DOOR", at=hour + timedelta(minutes=minute)
                ),
                source=Source.WEBHOOK,
            )
        filters = {"since": hour + timedelta(minutes=10), "until": hour + timedelta(minutes=55)}

        assert summed(counted(filters, timezone.now())) == Counter({("LOCK_DOOR", "success"): 3})
        # Without the rollups, what is left is what was read from the attempts: the one
        # attempt of the five minutes outside the range, taken off.
        HourlyCount.objects.all().delete()
        DailyCount.objects.all().delete()
        assert sum(n for _, _, n in counted(filters, timezone.now())) == -1

    def test_an_unfiltered_count_reads_no_attempt(self):
        call_command("load_attempts", "200", "--seed", "5", stdout=StringIO(), stderr=StringIO())
        with CaptureQueriesContext(connection) as queries:
            rows = counted({}, timezone.now())
        assert sum(n for _, _, n in rows) == 200
        assert not any('"attempts_attempt"' in q["sql"] for q in queries.captured_queries)
