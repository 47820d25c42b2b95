"""The counts above the list: attempts by action type and status, the error rate, the stuck.

Whole days and hours are read from the rollups (attempts/rollups.py), and only the partial hours
at the edges of the range from the attempts themselves, so a count costs the same at any size.
The figures are computed at most once per interval for every viewer of the same filters
(dashboard/shared.py).
"""

from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone

from attempts import rollup_reads, rollups
from attempts.filters import filtered_attempts, narrowed, since_of
from attempts.models import DailyCount, HourlyCount, Status
from dashboard.shared import figures_key, shared


def stats_key(filters: dict[str, Any], stuck_minutes: int) -> str:
    return figures_key("attempts:stats", filters, stuck_minutes)


def attempt_stats(filters: dict[str, Any], stuck_minutes: int) -> dict[str, Any]:
    """Counts by action_type and status, the error rate and the stuck count for these filters."""
    return shared(stats_key(filters, stuck_minutes), lambda: compute_stats(filters, stuck_minutes))


def whole_hours(filters: dict[str, Any], now: datetime) -> tuple[datetime | None, datetime | None]:
    """The whole hours within the filters' time range, as [start, end) (None: unbounded)."""
    since, until = since_of(filters, now), filters.get("until")
    start = rollups.hour_of(since) if since else None
    if start is not None and start < since:
        start += rollups.HOUR
    end = rollups.hour_of(until) if until else None
    return start, end


def counted(filters: dict[str, Any], now: datetime) -> list[tuple[str, str, int]]:
    """(action_type, status, count) rows that sum to the counts of the attempts the filters
    select, exactly: whole days and hours from the rollups, the partial hours at the range's
    edges from the attempts (some rows negative: see below). All in one statement, so that every
    part reads the same moment and a subtraction never meets an attempt that moved between."""
    since, until = since_of(filters, now), filters.get("until")
    by = ("action_type", "status")
    if filters.get("q") or filters.get("not_found") or (since and until and since >= until):
        qs = filtered_attempts({**filters, "last": None}).order_by()
        if since:
            qs = qs.filter(first_seen_at__gte=since)
        return list(qs.values_list(*by).annotate(n=Count("id")))
    narrow = partial(narrowed, filters=filters)
    start, end = whole_hours(filters, now)
    parts = rollup_reads.parts(HourlyCount, DailyCount, narrow, start, end, by)
    # Each range of attempts with exactly two time bounds: given more (or an OR of several),
    # SQLite reads the whole range of the filters instead.
    anytime = filtered_attempts({**filters, "last": None, "since": None, "until": None})

    def attempts(lo: datetime, hi: datetime, sign: int) -> QuerySet:
        within = anytime.order_by().filter(first_seen_at__gte=lo, first_seen_at__lt=hi)
        return within.values_list(*by).annotate(n=Count("id") * sign)

    for hour, lo, hi in partial_hours(since, until, start, end):
        if hi - lo <= rollups.HOUR / 2:
            parts.append(attempts(lo, hi, 1))
            continue
        # Most of the hour: its rollup less the attempts outside the range, half an hour or less
        # of them (about 7,000 at ten million over 30 days) instead of up to a whole hour.
        parts += rollup_reads.parts(HourlyCount, DailyCount, narrow, hour, hour + rollups.HOUR, by)
        if hour < lo:
            parts.append(attempts(hour, lo, -1))
        if hi < hour + rollups.HOUR:
            parts.append(attempts(hi, hour + rollups.HOUR, -1))
    return rollup_reads.united(parts)


def partial_hours(
    since: datetime | None, until: datetime | None, start: datetime | None, end: datetime | None
) -> list[tuple[datetime, datetime, datetime]]:
    """(hour, lo, hi): the parts [lo, hi) of the range [since, until) in the hours it covers only
    in part, around its whole hours [start, end)."""
    if start is not None and end is not None and start > end:
        return [(rollups.hour_of(since), since, until)]  # within one hour
    edges = []
    if since is not None and since < start:
        edges.append((start - rollups.HOUR, since, start))
    if until is not None and end < until:
        edges.append((end, end, until))
    return edges


def stuck_count(filters: dict[str, Any], now: datetime, before: datetime, pending: int) -> int:
    """Of the `pending` attempts the filters select (as counted() counts them), those first seen
    before `before` that Seam still has: all but the few first seen since, read from the status
    index, and the few not found on Seam, read from their own index. An outage that leaves a
    hundred thousand attempts pending costs no more to count than a quiet day."""
    until = filters.get("until") or now
    since = max(since_of(filters, now) or before, before)
    # The time range as exactly two bounds: given more, SQLite reads the range from the list's
    # index instead of the pending attempts' one.
    anytime = filtered_attempts({**filters, "last": None, "since": None, "until": None})
    pending_ones = anytime.order_by().filter(status=Status.PENDING)
    stuck = pending
    if until > since:
        stuck -= pending_ones.filter(first_seen_at__gte=since, first_seen_at__lt=until).count()
    lost = pending_ones.filter(not_found_at__isnull=False, first_seen_at__lt=min(before, until))
    if first := since_of(filters, now):
        lost = lost.filter(first_seen_at__gte=first)
    return stuck - lost.count()


def compute_stats(filters: dict[str, Any], stuck_minutes: int) -> dict[str, Any]:
    now = timezone.now()
    counts: dict[str, dict[str, int]] = {}
    for action_type, status, n in counted(filters, now):
        counts.setdefault(action_type, {}).setdefault(status, 0)
        counts[action_type][status] += n
    stuck_before = now - timedelta(minutes=stuck_minutes)
    all_pending = sum(c.get(Status.PENDING, 0) for c in counts.values())
    rows = [
        {
            "action_type": action_type,
            "total": sum(c.values()),
            **{status: c.get(status, 0) for status in Status.values},
        }
        for action_type, c in sorted(counts.items(), key=lambda kv: -sum(kv[1].values()))
    ]
    ended = sum(r["success"] + r["error"] for r in rows)
    errors = sum(r["error"] for r in rows)
    return {
        "types": rows,
        "total": sum(r["total"] for r in rows),
        "errors": errors,
        "ended": ended,
        "error_rate": errors / ended if ended else None,
        "error_percent": round(100 * errors / ended, 1) if ended else None,
        "stuck": stuck_count(filters, now, stuck_before, all_pending),
        "stuck_minutes": stuck_minutes,
        "stuck_before": stuck_before,
        "stuck_until": stuck_before.strftime("%Y-%m-%dT%H:%M:%S"),
        "computed_at": now,
    }
