"""Recomputing the rollups from the attempts while webhooks land (`rebuild_rollups`).

An hour at a time: one moment of the database gives the hour's attempts and its hourly rows, and
what the attempts count less what the rows say is added to the rows, with the upserts merge()
makes. A merge that commits after that moment adds its own change on top: it changed the rows
and the attempts together, so nothing is counted twice or lost, and the result is what a rebuild
on a quiet database gives. Then each day's daily rows the same way, from the hourly ones (merge()
keeps a day's rows the sum of its hours'). On PostgreSQL the reads take no lock (a REPEATABLE
READ snapshot) and only the corrections are written; SQLite's write lock is held for one hour's
reads and corrections at a time. Rows counted down to nothing stay, at zero.
"""

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import NamedTuple

from django.db import connection, models, transaction
from django.db.models import Sum

from attempts import rollups
from attempts.models import Attempt
from attempts.rollups import COUNT_KEY, DAY, HOUR, RESOLUTION_KEY, Tables, Upsert
from dashboard import locks
from dashboard.sqlite import write_turn

# Any fixed number: the key of the PostgreSQL advisory lock that one rebuild holds.
ADVISORY_LOCK_KEY = 0x5EA7B0B5
FIELDS = ("first_seen_at", "ended_at", "action_type", "status", "error_type")


class Rebuilt(NamedTuple):
    hours: int
    days: int
    corrected: int


@contextmanager
def _writing() -> Iterator[None]:
    """A write transaction, taking SQLite's write turn as webhooks do; inside a caller's
    transaction (a migration's), that one."""
    if connection.in_atomic_block:
        yield
        return
    with write_turn(), transaction.atomic():
        yield


@contextmanager
def _snapshot() -> Iterator[None]:
    """PostgreSQL: a transaction whose reads all see one moment of the database, and lock
    nothing."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _correct(read: Callable[[], list[Upsert]]) -> int:
    """Reads, in one moment, what rows should count against what they do, then adds the
    difference: in the same transaction on SQLite (it holds the write lock for its reads anyway)
    and in a migration; in a transaction of its own on PostgreSQL, as a merge's upserts. How
    many rows it corrected."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with _snapshot():
            upserts = read()
        if upserts:
            with transaction.atomic():
                rollups._run(upserts)
    else:
        with _writing():
            upserts = read()
            rollups._run(upserts)
    return sum(len(rows) for _, _, rows in upserts)


def _columns(model: type[models.Model], names: tuple[str, ...]) -> tuple[str, ...]:
    """The key's columns that the table has: a migration's historical table may lack some."""
    fields = {field.name for field in model._meta.get_fields()}
    return tuple(name for name in names if name in fields)


def _differences(model: type[models.Model], names: tuple[str, ...], should: Counter, start):
    """The upsert that brings `model`'s rows of one period (`start`) to `should` ({key: n})."""
    columns = _columns(model, names)
    if columns != names:
        keep = [names.index(name) for name in columns]
        projected: Counter = Counter()
        for key, n in should.items():
            projected[tuple(key[i] for i in keep)] += n
        should, names = projected, columns
    stored = model.objects.filter(start=start).values_list(*names, "count")
    deltas = Counter(should)
    deltas.subtract({tuple(row[:-1]): row[-1] for row in stored})
    rows = [[*key, n] for key, n in sorted(deltas.items()) if n]
    return [(model, names, rows)] if rows else []


def _hour(hour: datetime, attempts: type[models.Model], tables: Tables) -> Callable:
    def read() -> list[Upsert]:
        counts: Counter = Counter()
        resolutions: Counter = Counter()
        within = attempts.objects.filter(first_seen_at__gte=hour, first_seen_at__lt=hour + HOUR)
        for row in within.values_list(*FIELDS):
            rollups.tally(rollups.keys_of(*row), counts, resolutions)
        return _differences(tables.hourly_counts, COUNT_KEY, counts, hour) + _differences(
            tables.hourly_resolutions, RESOLUTION_KEY, resolutions, hour
        )

    return read


def _day(day: datetime, tables: Tables) -> Callable:
    def read() -> list[Upsert]:
        upserts = []
        for hourly, daily, names in (
            (tables.hourly_counts, tables.daily_counts, COUNT_KEY),
            (tables.hourly_resolutions, tables.daily_resolutions, RESOLUTION_KEY),
        ):
            names = _columns(hourly, names)
            hours = hourly.objects.filter(start__gte=day, start__lt=day + DAY)
            summed = hours.values_list(*names[1:]).annotate(n=Sum("count")).order_by()
            should = Counter({(day, *row[:-1]): row[-1] for row in summed})
            upserts += _differences(daily, names, should, day)
        return upserts

    return read


def _starts(model: type[models.Model], since: datetime) -> set[datetime]:
    return set(model.objects.filter(start__gte=since).values_list("start", flat=True).distinct())


def _hours(attempts: type[models.Model], tables: Tables, since: datetime) -> list[datetime]:
    """The hours from `since` on with attempts or hourly rows, one index seek per hour found."""
    hours = _starts(tables.hourly_counts, since) | _starts(tables.hourly_resolutions, since)
    at = since
    while True:
        after = attempts.objects.filter(first_seen_at__gte=at).order_by("first_seen_at")
        first = after.values_list("first_seen_at", flat=True).first()
        if first is None:
            return sorted(hours)
        hours.add(rollups.hour_of(first))
        at = rollups.hour_of(first) + HOUR


def _forget_before(tables: Tables, hour: datetime | None, day: datetime | None) -> None:
    with _writing():
        for model, before in (
            (tables.hourly_counts, hour),
            (tables.hourly_resolutions, hour),
            (tables.daily_counts, day),
            (tables.daily_resolutions, day),
        ):
            (model.objects.filter(start__lt=before) if before else model.objects.all()).delete()


def rebuild(
    everything: bool = False,
    attempts: type[models.Model] = Attempt,
    tables: Tables = rollups.CURRENT,
) -> Rebuilt | None:
    """Recomputes the rollups from the attempts, with the key functions merge() uses, an hour
    at a time; None when another rebuild is running.

    The periods before the oldest attempt keep their rollups (pruning deletes whole days of
    attempts, and their trends outlive them) unless `everything` is set. (The models are
    arguments for the migrations that fill them, which pass their historical models.)
    """
    with locks.exclusive("rollups", ADVISORY_LOCK_KEY) as got:
        if not got:
            return None
        oldest = attempts.objects.order_by("first_seen_at").values_list("first_seen_at").first()
        if oldest is None:
            if everything:
                _forget_before(tables, None, None)
            return Rebuilt(0, 0, 0)
        first_hour, first_day = rollups.hour_of(oldest[0]), rollups.day_of(oldest[0])
        if everything:
            _forget_before(tables, first_hour, first_day)
        hours = _hours(attempts, tables, first_hour)
        corrected = sum(_correct(_hour(hour, attempts, tables)) for hour in hours)
        days = {rollups.day_of(hour) for hour in hours}
        days |= _starts(tables.daily_counts, first_day) | _starts(
            tables.daily_resolutions, first_day
        )
        corrected += sum(_correct(_day(day, tables)) for day in sorted(days))
        return Rebuilt(len(hours), len(days), corrected)
