"""Counts and resolution times of attempts per hour, kept exact by construction.

Every attempt is counted once under its key: the hour it was first seen, its action type, status
and error type; an ended one also under its time to resolution's bucket. `merge()` calls
`moved()` with the keys before and after a change, in the change's transaction, so the rollups
can never drift from the attempts; `rebuild()` recomputes them with the same key functions.
Each counter touched is one upsert statement, built once.
"""

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.db import connection, models, transaction

from attempts.models import TERMINAL_STATUSES, Attempt, HourlyCount, HourlyResolution

HOUR = timedelta(hours=1)
# Fixed, log-spaced bucket edges for the time to resolution: ten per decade from 10 ms to about
# 11.6 days. Bucket i holds times in [EDGES[i-1], EDGES[i]); bucket 0 is under 10 ms and the
# last one everything from the last edge on. Compared in whole microseconds, as the database
# stores times, so every path puts an attempt in the same bucket.
EDGES_US = tuple(round(10_000 * 10 ** (i / 10)) for i in range(81))
BUCKETS = len(EDGES_US) + 1

CountKey = tuple[datetime, str, str, str]
ResolutionKey = tuple[datetime, str, str, int]
Keys = tuple[CountKey, ResolutionKey | None]


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def bucket_of(took: timedelta) -> int:
    return bisect_right(EDGES_US, took // timedelta(microseconds=1))


def bucket_upper(bucket: int) -> timedelta | None:
    """The time under which every attempt of the bucket ended (None: the open-ended last)."""
    if bucket >= len(EDGES_US):
        return None
    return timedelta(microseconds=EDGES_US[bucket])


def keys_of(
    first_seen_at: datetime,
    ended_at: datetime | None,
    action_type: str,
    status: str,
    error_type: str,
) -> Keys:
    hour = hour_of(first_seen_at)
    count = (hour, action_type, status, error_type)
    if ended_at is None or status not in TERMINAL_STATUSES:
        return count, None
    return count, (hour, action_type, status, bucket_of(ended_at - first_seen_at))


def keys(attempt: Attempt) -> Keys:
    return keys_of(
        attempt.first_seen_at,
        attempt.ended_at,
        attempt.action_type,
        attempt.status,
        attempt.error_type,
    )


@lru_cache(maxsize=4)
def _upsert_sql(model: type[models.Model], key: tuple[str, ...]) -> str:
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    columns = ", ".join(qn(c) for c in (*key, "count"))
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * (len(key) + 1))}) "  # noqa: S608
        f"ON CONFLICT ({', '.join(qn(c) for c in key)}) "
        f"DO UPDATE SET {qn('count')} = {table}.{qn('count')} + excluded.{qn('count')}"
    )


COUNT_KEY = ("hour", "action_type", "status", "error_type")
RESOLUTION_KEY = ("hour", "action_type", "status", "bucket")


@lru_cache(maxsize=1024)
def _hour_param(vendor: str, hour: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(hour)


def _params(key: tuple[Any, ...], n: int) -> list[Any]:
    return [_hour_param(connection.vendor, key[0]), *key[1:], n]


def add(counts: Counter, resolutions: Counter) -> None:
    """Adds these deltas to the counters, in key order (concurrent writers never wait on each
    other in a circle), skipping those that cancel out."""
    with connection.cursor() as cursor:
        for model, names, deltas in (
            (HourlyCount, COUNT_KEY, counts),
            (HourlyResolution, RESOLUTION_KEY, resolutions),
        ):
            rows = [_params(k, n) for k, n in sorted(deltas.items()) if n]
            if len(rows) == 1:
                cursor.execute(_upsert_sql(model, names), rows[0])
            elif rows:
                cursor.executemany(_upsert_sql(model, names), rows)


def moved(before: Keys | None, after: Keys) -> None:
    """Counts an attempt's change from the keys it had (None: new) to those it has."""
    if before == after:
        return
    if before is None:
        # A new attempt, the webhook's common case: one or two upserts, nothing to sort.
        with connection.cursor() as cursor:
            cursor.execute(_upsert_sql(HourlyCount, COUNT_KEY), _params(after[0], 1))
            if after[1] is not None:
                cursor.execute(_upsert_sql(HourlyResolution, RESOLUTION_KEY), _params(after[1], 1))
        return
    counts: Counter = Counter()
    resolutions: Counter = Counter()
    for sign, pair in ((-1, before), (1, after)):
        counts[pair[0]] += sign
        if pair[1] is not None:
            resolutions[pair[1]] += sign
    add(counts, resolutions)


def count(attempts: Iterable[Attempt]) -> None:
    """Counts new attempts (a bulk load), one upsert per counter touched."""
    counts: Counter = Counter()
    resolutions: Counter = Counter()
    for attempt in attempts:
        tally(keys(attempt), counts, resolutions)
    add(counts, resolutions)


def tally(pair: Keys, counts: Counter, resolutions: Counter) -> None:
    counts[pair[0]] += 1
    if pair[1] is not None:
        resolutions[pair[1]] += 1


def rebuild(
    everything: bool = False,
    attempts: type[models.Model] = Attempt,
    hourly_counts: type[models.Model] = HourlyCount,
    hourly_resolutions: type[models.Model] = HourlyResolution,
) -> tuple[int, int]:
    """Recomputes the rollups from the attempts, with the key functions merge() uses.

    Hours before the oldest attempt keep their rollups (pruning deletes whole hours of
    attempts, and their trends outlive them) unless `everything` is set. Returns how many
    count and resolution rows were written. (The models are arguments for the migration that
    fills them, which passes its historical models.)
    """
    fields = ("first_seen_at", "ended_at", "action_type", "status", "error_type")
    with transaction.atomic():
        oldest = attempts.objects.order_by("first_seen_at").values_list("first_seen_at").first()
        counts_qs = hourly_counts.objects.all()
        resolutions_qs = hourly_resolutions.objects.all()
        if oldest and not everything:
            counts_qs = counts_qs.filter(hour__gte=hour_of(oldest[0]))
            resolutions_qs = resolutions_qs.filter(hour__gte=hour_of(oldest[0]))
        counts_qs.delete()
        resolutions_qs.delete()
        counts: Counter = Counter()
        resolutions: Counter = Counter()
        for row in attempts.objects.values_list(*fields).iterator(chunk_size=10_000):
            tally(keys_of(*row), counts, resolutions)
        hourly_counts.objects.bulk_create(
            (
                hourly_counts(**dict(zip(COUNT_KEY, k, strict=True)), count=n)
                for k, n in counts.items()
            ),
            batch_size=2000,
        )
        hourly_resolutions.objects.bulk_create(
            (
                hourly_resolutions(**dict(zip(RESOLUTION_KEY, k, strict=True)), count=n)
                for k, n in resolutions.items()
            ),
            batch_size=2000,
        )
    return len(counts), len(resolutions)


def percentile(buckets: dict[int, int], share: float) -> timedelta | None:
    """The time under which `share` of the attempts counted in these buckets ended: the upper
    edge of the bucket where that share is reached (None if nothing ended)."""
    total = sum(buckets.values())
    if not total:
        return None
    reached = 0
    for bucket in sorted(buckets):
        reached += buckets[bucket]
        if reached >= share * total:
            return bucket_upper(bucket) or timedelta(microseconds=EDGES_US[-1])
    return None
