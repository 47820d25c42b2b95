"""What was recorded after a live page loaded: the rows a poll adds to it.

A page knows the newest row it has seen (`newest`) and asks for the rows above it. On SQLite that
is all: one writer at a time, so rows become visible in key order. PostgreSQL hands out keys
before commit, so a row can become visible below `newest` after a poll moved past it (a webhook
held up by a lock commits after one that came later). So on PostgreSQL a page also carries the
keys below `newest` that were not visible yet, as ranges (`in_flight`), and each poll asks for
those again. A range is given up only once it is settled: every transaction that could hold one
of its keys has ended (PostgreSQL's snapshot says: `pg_snapshot_xmin`, the oldest transaction
still running, has passed the range's `horizon`). A key's transaction may take its key a moment
before it gets a transaction id, so the horizon of a range is taken one poll after the range was
found (the snapshot's `xmax` then, which every transaction running by then is below). Most
ranges are keys of transactions that rolled back, or of rows still being written: gone within
two polls. A page that loads waits likewise for the keys not visible among the last
RECORDED_SINCE_WINDOW below its newest row.
"""

import re
from dataclasses import dataclass, replace
from typing import Any

from django.db import connection
from django.db.models import Model, QuerySet

from attempts.filters import filtered_attempts
from attempts.models import Attempt
from attempts.paging import PAGE_SIZE

# How many rows recorded since a page's newest one a poll looks at, at most.
RECORDED_SINCE_WINDOW = 1000
# How many ranges of keys in flight a page carries at most (they ride in the poll's URL): past
# that, a poll leaves the rows above the last range for a later poll, so none is skipped.
MAX_IN_FLIGHT = 50

Ranges = tuple[tuple[int, int], ...]
RANGE = re.compile(r"[0-9]{1,18}(-[0-9]{1,18})?")


@dataclass(frozen=True)
class Since:
    """Where a live page stands: the newest row it has seen, and the keys below it that may yet
    become visible. `horizon` settles the ranges at or below `aged_up_to`; those above it were
    found by the last look and get their horizon at the next."""

    newest: int
    in_flight: Ranges = ()
    horizon: int = 0
    aged_up_to: int = 0

    def token(self) -> str:
        """The in-flight ranges as the page sends them back: `<horizon>.<aged_up_to>.<ranges>`
        with ranges such as `5-9,12` (empty: none)."""
        if not self.in_flight:
            return ""
        ranges = ",".join(f"{lo}-{hi}" if hi > lo else str(lo) for lo, hi in self.in_flight)
        return f"{self.horizon}.{self.aged_up_to}.{ranges}"

    @classmethod
    def parse(cls, newest: int, token: str) -> "Since":
        """The page's position from its `newest` and `in_flight` values; ValueError if malformed."""
        if not token:
            return cls(newest)
        problem = ValueError("in_flight must be <horizon>.<newest>.<ranges>, as the page had it.")
        parts = token.split(".")
        if len(parts) != 3 or not all(p.isdigit() and len(p) <= 20 for p in parts[:2]):
            raise problem
        ranges = []
        for item in parts[2].split(","):
            if not RANGE.fullmatch(item):
                raise problem
            lo, _, hi = item.partition("-")
            ranges.append((int(lo), int(hi or lo)))
        # Arrivals split ranges, so a page may carry more than MAX_IN_FLIGHT for a while.
        if len(ranges) > RECORDED_SINCE_WINDOW or any(
            lo > hi or hi > newest or (i and lo <= ranges[i - 1][1])
            for i, (lo, hi) in enumerate(ranges)
        ):
            raise problem
        return cls(newest, tuple(ranges), int(parts[0]), int(parts[1]))


def newest_pk(model: type[Model] = Attempt) -> int:
    """The newest row recorded."""
    return model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def since_now(model: type[Model] = Attempt) -> Since:
    """Where a page that loads now starts: after the newest row, waiting for the keys among the
    last RECORDED_SINCE_WINDOW below it that are not visible yet (on PostgreSQL)."""
    if connection.vendor != "postgresql":
        return Since(newest_pk(model))
    table = _table(model)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT ARRAY(SELECT id FROM {table} WHERE id > "  # noqa: S608 - names only
            f"(SELECT COALESCE(MAX(id), 0) FROM {table}) - %s ORDER BY id)",
            [RECORDED_SINCE_WINDOW],
        )
        (visible,) = cursor.fetchone()
    if not visible:
        return Since(0)
    newest = visible[-1]
    gaps = _gaps(max(0, newest - RECORDED_SINCE_WINDOW), visible)
    # The ranges nearest the newest: the keys of transactions still running are there.
    return Since(newest, tuple(gaps[-MAX_IN_FLIGHT:]))


def _gaps(after: int, visible: list[int]) -> list[tuple[int, int]]:
    """The ranges of keys above `after` and below the last of `visible` (sorted) not in it."""
    gaps, previous = [], after
    for pk in visible:
        if pk > previous + 1:
            gaps.append((previous + 1, pk - 1))
        previous = pk
    return gaps


def _without(ranges: Ranges, seen: list[int]) -> list[tuple[int, int]]:
    """The ranges less the keys seen (sorted, each within a range)."""
    left = []
    keys = iter(seen)
    key = next(keys, None)
    for lo, hi in ranges:
        start = lo
        while key is not None and key <= hi:
            if key >= start:
                if key > start:
                    left.append((start, key - 1))
                start = key + 1
            key = next(keys, None)
        if start <= hi:
            left.append((start, hi))
    return left


def _look(model: type[Model], since: Since) -> tuple[list[int], list[int], int, int]:
    """In one statement (one snapshot): the keys visible above `newest` (the window), those
    visible within the in-flight ranges, and the snapshot's xmin and xmax."""
    table = _table(model)
    los = [lo for lo, _ in since.in_flight]
    his = [hi for _, hi in since.in_flight]
    with connection.cursor() as cursor:
        sql = (
            "SELECT pg_snapshot_xmin(s)::text, pg_snapshot_xmax(s)::text, "  # noqa: S608
            f"ARRAY(SELECT id FROM {table} WHERE id > %s ORDER BY id LIMIT %s), "
            "ARRAY(SELECT x.id FROM unnest(%s::bigint[], %s::bigint[]) AS r(lo, hi), "
            f"LATERAL (SELECT id FROM {table} WHERE id BETWEEN r.lo AND r.hi "
            "ORDER BY id LIMIT %s) AS x ORDER BY x.id LIMIT %s) "
            "FROM pg_current_snapshot() AS s"
        )
        cursor.execute(
            sql,
            [since.newest, RECORDED_SINCE_WINDOW, los, his, *[RECORDED_SINCE_WINDOW] * 2],
        )
        xmin, xmax, window, arrived = cursor.fetchone()
    return window, arrived, int(xmin), int(xmax)


def advance(
    since: Since, window: list[int], arrived: list[int], xmin: int, xmax: int
) -> tuple[list[int], Since]:
    """The keys a poll takes in (those that arrived in the in-flight ranges, and the window's up
    to where MAX_IN_FLIGHT ranges allow) and where the page stands after it."""
    left = _without(since.in_flight, arrived)
    # A full batch of arrivals may have more behind it: settle nothing until they are in.
    if xmin >= since.horizon and len(arrived) < RECORDED_SINCE_WINDOW:
        left = [(lo, hi) for lo, hi in left if lo > since.aged_up_to]
    if any(lo <= since.aged_up_to for lo, _ in left):
        # Still waiting for the same transactions: the younger ranges wait their turn.
        horizon, aged_up_to = since.horizon, since.aged_up_to
    else:
        # The ranges found by earlier looks get their horizon: the transactions holding their
        # keys all had an id by now, below xmax.
        horizon, aged_up_to = xmax, since.newest
    taken, previous = [], since.newest
    for pk in window:
        if pk > previous + 1:
            if len(left) >= MAX_IN_FLIGHT:
                break
            left.append((previous + 1, pk - 1))
        taken.append(pk)
        previous = pk
    after = Since(previous, tuple(left), horizon, aged_up_to) if left else Since(previous)
    return arrived + taken, after


def recorded_after(
    filtered: QuerySet, since: Since, limit: int = PAGE_SIZE
) -> tuple[list, int, Since]:
    """The rows of `filtered` recorded since the page's position: the newest `limit` of them
    (in the queryset's order), how many there are, and the position to ask from next time.

    The primary key alone picks the candidates (at most RECORDED_SINCE_WINDOW above `newest`,
    the rest left to the next look, and those arrived in the in-flight ranges); the filters then
    apply to those rows only, by primary key, so a live page's poll costs the same at a million
    rows whatever its filters."""
    model = filtered.model
    if connection.vendor == "postgresql":
        window, arrived, xmin, xmax = _look(model, since)
        candidates, after = advance(since, window, arrived, xmin, xmax)
    else:
        candidates = list(
            model.objects.filter(pk__gt=since.newest)
            .order_by("pk")
            .values_list("pk", flat=True)[:RECORDED_SINCE_WINDOW]
        )
        after = replace(since, newest=candidates[-1]) if candidates else since
    if not candidates:
        return [], 0, after
    matching = list(filtered.filter(pk__in=candidates))
    return matching[:limit], len(matching), after


def recorded_since(
    filters: dict[str, Any], since: Since, limit: int = PAGE_SIZE
) -> tuple[list[Attempt], int, Since]:
    """The attempts recorded since the page's position that the filters select (see
    recorded_after)."""
    return recorded_after(filtered_attempts(filters).defer("result"), since, limit)
