"""Counts and resolution times of attempts per hour and per day, kept exact by construction.

Every attempt is counted once under its key: the hour it was first seen, its action type, status
and error type; an ended one also under that key and its time to resolution's bucket. Each key
is counted in an hourly table and in a daily one (the same key, its day). `merge()` calls
`moved()` with the keys before and after a change, in the change's transaction, so the rollups
can never drift from the attempts; `attempts.rebuild` recomputes them with the same key
functions.
Each table touched is one upsert statement, built once; on PostgreSQL, a change's upserts are
one. attempts/rollup_reads.py reads them.
"""

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from django.db import connection, models

from attempts.models import (
    TERMINAL_STATUSES,
    Attempt,
    DailyCount,
    DailyResolution,
    HourlyCount,
    HourlyResolution,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Fixed, log-spaced bucket edges for the time to resolution: ten per decade from 10 ms to about
# 11.6 days. Bucket i holds times in [EDGES[i-1], EDGES[i]); bucket 0 is under 10 ms and the
# last one everything from the last edge on. Compared in whole microseconds, as the database
# stores times, so every path puts an attempt in the same bucket.
EDGES_US = tuple(round(10_000 * 10 ** (i / 10)) for i in range(81))
BUCKETS = len(EDGES_US) + 1

CountKey = tuple[datetime, str, str, str]
ResolutionKey = tuple[datetime, str, str, str, int]
Keys = tuple[CountKey, ResolutionKey | None]


class Tables(NamedTuple):
    hourly_counts: type[models.Model] = HourlyCount
    daily_counts: type[models.Model] = DailyCount
    hourly_resolutions: type[models.Model] = HourlyResolution
    daily_resolutions: type[models.Model] = DailyResolution


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(at: datetime) -> datetime:
    return hour_of(at).replace(hour=0)


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
    return count, (*count, bucket_of(ended_at - first_seen_at))


def keys(attempt: Attempt) -> Keys:
    return keys_of(
        attempt.first_seen_at,
        attempt.ended_at,
        attempt.action_type,
        attempt.status,
        attempt.error_type,
    )


COUNT_KEY = ("start", "action_type", "status", "error_type")
RESOLUTION_KEY = ("start", "action_type", "status", "error_type", "bucket")


# One upsert: the rollup's model, its key's columns, and its rows, each [start, *rest of the
# key, n]: a key's own values, adapted for the database only when its statement runs.
Upsert = tuple[type[models.Model], tuple[str, ...], list[list[Any]]]


@lru_cache(maxsize=8)
def _clauses(model: type[models.Model], key: tuple[str, ...]) -> tuple[str, str]:
    """An upsert's clauses around its rows: the INSERT INTO with its columns, and the ON
    CONFLICT that adds the rows' counts to those stored."""
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    columns = ", ".join(qn(c) for c in (*key, "count"))
    return (
        f"INSERT INTO {table} ({columns})",
        f"ON CONFLICT ({', '.join(qn(c) for c in key)}) "
        f"DO UPDATE SET {qn('count')} = {table}.{qn('count')} + excluded.{qn('count')}",
    )


def _values(key: tuple[str, ...], n: int) -> str:
    """The placeholders of n rows of a key and its count."""
    return ", ".join([f"({', '.join(['%s'] * (len(key) + 1))})"] * n)


@lru_cache(maxsize=64)
def _many(model: type[models.Model], key: tuple[str, ...], n: int) -> str:
    """The upsert of n rows, each a different key."""
    insert, on_conflict = _clauses(model, key)
    return f"{insert} VALUES {_values(key, n)} {on_conflict}"  # noqa: S608 - names only


@lru_cache(maxsize=2048)
def _start_param(vendor: str, start: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(start)


def _params(key: tuple[Any, ...], n: int, daily: bool) -> list[Any]:
    return [key[0].replace(hour=0) if daily else key[0], *key[1:], n]


def _flat(rows: list[list[Any]]) -> list[Any]:
    """The rows' values as one statement's parameters, each start adapted for the database."""
    vendor = connection.vendor
    return [p for row in rows for p in (_start_param(vendor, row[0]), *row[1:])]


def _statements(counts: Counter, resolutions: Counter) -> Iterator[Upsert]:
    """Every upsert these deltas make, in one order for every writer (so concurrent writers
    never wait on each other in a circle), skipping deltas that cancel out."""
    for deltas, names, hourly, daily in (
        (counts, COUNT_KEY, HourlyCount, DailyCount),
        (resolutions, RESOLUTION_KEY, HourlyResolution, DailyResolution),
    ):
        for model, by_day in ((hourly, False), (daily, True)):
            summed: Counter = Counter()
            for key, n in deltas.items():
                summed[(key[0].replace(hour=0), *key[1:]) if by_day else key] += n
            rows = [_params(k, n, False) for k, n in sorted(summed.items()) if n]
            if rows:
                yield model, names, rows


# Rows per statement of a bulk add: one statement of many rows costs the database far less
# than as many statements (a load adds about two counters per attempt).
ROWS_PER_STATEMENT = 1000


@lru_cache(maxsize=64)
def _chained(shapes: tuple[tuple[type[models.Model], tuple[str, ...], int], ...]) -> str:
    """The upserts (model, key, rows) as one PostgreSQL statement: each but the last a
    data-modifying WITH query, and each after the first reading the whole output of the one
    before, so they run in the given order (the order that keeps concurrent writers out of
    deadlocks)."""
    parts = []
    for i, (model, key, n) in enumerate(shapes):
        if i:
            insert, on_conflict = _clauses(model, key)
            parts.append(
                f"{insert} SELECT v.* FROM (VALUES {_values(key, n)}) AS v, "  # noqa: S608
                f"(SELECT count(*) FROM s{i - 1}) AS done {on_conflict}"
            )
        else:
            parts.append(_many(model, key, n))
    if len(parts) == 1:
        return parts[0]
    queries = ", ".join(f"s{i} AS ({part} RETURNING 1)" for i, part in enumerate(parts[:-1]))
    return f"WITH {queries} {parts[-1]}"


def _run(upserts: list[Upsert]) -> None:
    """Runs these upserts in order. On PostgreSQL a few rows go in one statement: each
    statement is a round trip to the server, which costs a webhook more than the writes."""
    with connection.cursor() as cursor:
        if (
            connection.vendor == "postgresql"
            and len(upserts) > 1
            and sum(len(rows) for _, _, rows in upserts) <= ROWS_PER_STATEMENT
        ):
            sql = _chained(tuple((model, key, len(rows)) for model, key, rows in upserts))
            cursor.execute(sql, [p for _, _, rows in upserts for p in _flat(rows)])
            return
        for model, key, rows in upserts:
            for i in range(0, len(rows), ROWS_PER_STATEMENT):
                chunk = rows[i : i + ROWS_PER_STATEMENT]
                cursor.execute(_many(model, key, len(chunk)), _flat(chunk))


def add(counts: Counter, resolutions: Counter) -> None:
    """Adds these deltas (by hourly key) to the hourly and the daily counters."""
    _run(list(_statements(counts, resolutions)))


def moved(before: Keys | None, after: Keys) -> None:
    """Counts an attempt's change from the keys it had (None: new) to those it has."""
    if before == after:
        return
    if before is None:
        # A new attempt, the webhook's common case: two or four rows, nothing to sort or sum.
        upserts: list[Upsert] = []
        for names, key, hourly, daily in (
            (COUNT_KEY, after[0], HourlyCount, DailyCount),
            (RESOLUTION_KEY, after[1], HourlyResolution, DailyResolution),
        ):
            if key is not None:
                upserts.append((hourly, names, [_params(key, 1, False)]))
                upserts.append((daily, names, [_params(key, 1, True)]))
        _run(upserts)
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


CURRENT = Tables()
