"""What /insights/ shows, read from the hourly rollups (whole hours) and the pending attempts.

Every figure is worked out here, numbers as text and SVG geometry included, so the template only
places them.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import quote, urlencode

from django.db.models import Sum
from django.utils import timezone

from attempts import rollup_reads, rollups
from attempts.filters import LAST_DELTAS, filtered_attempts, narrowed
from attempts.models import DailyCount, DailyResolution, HourlyCount, HourlyResolution, Status
from pages.fragments import URL_SAFE, detail_url_prefix
from pages.templatetags.attempt_tags import duration

CHART_WIDTH = 720
CHART_HEIGHT = 160
# Past this span the chart has a bar per day, not per hour.
HOURLY_UP_TO = timedelta(days=7)
DEFAULT_LAST = "24h"
TOP_ERRORS = 10
OLDEST_PENDING = 10
STATUS_ORDER = (Status.SUCCESS, Status.ERROR, Status.PENDING)
SHARES = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))


@dataclass(frozen=True)
class Span:
    """The whole hours shown, [start, end), and the width of a bar."""

    start: datetime
    end: datetime
    step: timedelta

    @classmethod
    def of(cls, filters: dict[str, Any], now: datetime) -> "Span":
        end = rollups.hour_of(filters["until"]) if filters.get("until") else None
        end = end or rollups.hour_of(now) + rollups.HOUR
        bounds = []
        if filters.get("since"):
            bounds.append(rollups.hour_of(filters["since"]))
        if filters.get("last") or not bounds:
            delta = LAST_DELTAS[filters.get("last") or DEFAULT_LAST]
            bounds.append(rollups.hour_of(now - delta) + rollups.HOUR)
        start = min(max(bounds), end)
        if end - start <= HOURLY_UP_TO:
            return cls(start, end, rollups.HOUR)
        # By whole days, the current one included.
        last_day = rollups.day_of(end - rollups.HOUR)
        return cls(rollups.day_of(start), last_day + rollups.DAY, rollups.DAY)

    def slots(self) -> list[datetime]:
        slots, at = [], self.start
        while at < self.end:
            slots.append(at)
            at += self.step
        return slots


def label(at: datetime, step: timedelta) -> str:
    return at.strftime("%Y-%m-%d %H:00" if step == rollups.HOUR else "%Y-%m-%d")


def trend(filters: dict[str, Any], span: Span) -> dict[str, Any]:
    """Attempts per bar stacked by status, and the error rate of each bar."""
    table = HourlyCount if span.step == rollups.HOUR else DailyCount
    rows = (
        narrowed(table.objects.all(), filters)
        .filter(start__gte=span.start, start__lt=span.end)
        .values_list("start", "status")
        .annotate(n=Sum("count"))
        .order_by()
    )
    per: dict[datetime, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for start, status, n in rows:
        per[start][status] += n
    slots = span.slots()
    most = max((sum(per[s].values()) for s in slots), default=0)
    tallest = most or 1  # the scale of an empty chart
    width = CHART_WIDTH / max(len(slots), 1)
    bars, rate_dots, table = [], [], []
    for i, slot in enumerate(slots):
        counts = per[slot]
        y = float(CHART_HEIGHT)
        segments = []
        for status in STATUS_ORDER:
            height = CHART_HEIGHT * counts[status] / tallest
            if height:
                y -= height
                segments.append({"status": str(status), "y": f"{y:.1f}", "height": f"{height:.1f}"})
        success, error, pending = (counts[s] for s in STATUS_ORDER)
        ended = success + error
        rate = error / ended if ended else None
        text = f"{label(slot, span.step)}: {success} success, {error} error, {pending} pending"
        if rate is not None:
            rate_dots.append(
                {
                    "slot": i,
                    "x": f"{i * width + width / 2:.1f}",
                    "y": f"{CHART_HEIGHT * (1 - rate):.1f}",
                    "percent": f"{100 * rate:.1f}",
                    "text": (
                        f"{label(slot, span.step)}: {100 * rate:.1f} % error rate"
                        f" ({plural(error, 'error')} of {ended} ended)"
                    ),
                }
            )
        bars.append(
            {"x": f"{i * width + 0.5:.1f}", "width": f"{max(width - 1, 0.5):.1f}", "text": text}
        )
        bars[-1]["segments"] = segments
        table.append(
            {
                "label": label(slot, span.step),
                "success": success,
                "error": error,
                "pending": pending,
                "total": success + error + pending,
                "error_percent": f"{100 * rate:.1f}%" if rate is not None else "—",
            }
        )
    return {
        "bars": bars,
        "rate_dots": rate_dots,
        "rate_lines": rate_lines(rate_dots),
        "table": table,
        "tallest": most,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "per": "hour" if span.step == rollups.HOUR else "day",
    }


def rate_lines(dots: list[dict[str, Any]]) -> list[str]:
    """A line through each run of neighbouring bars that have a rate: none across a bar with
    nothing ended (it would draw a rate that no attempt had), and none for a lone bar, whose
    dot alone shows it (a line of one point draws nothing)."""
    runs: list[list[dict[str, Any]]] = []
    for dot in dots:
        if runs and runs[-1][-1]["slot"] == dot["slot"] - 1:
            runs[-1].append(dot)
        else:
            runs.append([dot])
    return [" ".join(f"{d['x']},{d['y']}" for d in run) for run in runs if len(run) > 1]


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def top_errors(filters: dict[str, Any], span: Span, base: dict[str, Any]) -> list[dict[str, Any]]:
    """The commonest error types, each with a link to those attempts on the list."""
    errors_only = {**filters, "status": [Status.ERROR]}
    by_type: dict[str, int] = defaultdict(int)
    narrow = partial(narrowed, filters=errors_only)
    parts = rollup_reads.parts(
        HourlyCount, DailyCount, narrow, span.start, span.end, ("error_type",)
    )
    for error_type, n in rollup_reads.united(parts):
        by_type[error_type] += n
    rows = sorted(((k, n) for k, n in by_type.items() if n), key=lambda kv: (-kv[1], kv[0]))
    rows = rows[:TOP_ERRORS]
    widest = max((n for _, n in rows), default=0) or 1
    out = []
    for error_type, n in rows:
        query = {**base, "status": "error"}
        if error_type:
            query["error_type"] = error_type
        out.append(
            {
                "error_type": error_type,
                "count": n,
                "width": f"{200 * n / widest:.1f}",
                "url": "/attempts/?" + urlencode(query, doseq=True),
            }
        )
    return out


def resolution(filters: dict[str, Any], span: Span) -> list[dict[str, Any]]:
    """p50/p95/p99 of the time to resolution per action type, from summed buckets (kept by
    action type, status and error type, so every filter narrows them)."""
    narrow = partial(narrowed, filters=filters)
    by = ("action_type", "bucket")
    rows = rollup_reads.united(
        rollup_reads.parts(HourlyResolution, DailyResolution, narrow, span.start, span.end, by)
    )
    per: dict[str, dict[int, int]] = defaultdict(dict)
    for action_type, bucket, n in rows:
        per[action_type][bucket] = per[action_type].get(bucket, 0) + n
    out = []
    for action_type, buckets in sorted(per.items(), key=lambda kv: -sum(kv[1].values())):
        buckets = {b: n for b, n in buckets.items() if n}
        if not buckets:
            continue
        figures = {name: rollup_reads.percentile(buckets, share) for share, name in SHARES}
        out.append(
            {
                "action_type": action_type,
                "ended": sum(buckets.values()),
                **{name: "≤ " + duration(value) for name, value in figures.items()},
            }
        )
    return out


def report(filters: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    now = timezone.now()
    span = Span.of(filters, now)
    pending = []
    # A pending attempt has no error yet, so an error type filter leaves none.
    wanted = not filters.get("status") or Status.PENDING in filters["status"]
    if wanted and not filters.get("error_type"):
        # However old: a pending attempt from before the range is the one to look at first.
        anytime = {"last": None, "since": None, "until": None, "q": None}
        oldest = (
            filtered_attempts({**filters, **anytime, "status": [Status.PENDING]})
            .order_by("first_seen_at", "id")
            .only("action_attempt_id", "action_type", "first_seen_at")[:OLDEST_PENDING]
        )
        pending = [
            {
                "id": a.action_attempt_id,
                "url": f"{detail_url_prefix()}{quote(a.action_attempt_id, safe=URL_SAFE)}/",
                "action_type": a.action_type,
                "first_seen": a.first_seen_at.strftime("%Y-%m-%d %H:%M:%S"),
                "age": duration(now - a.first_seen_at),
            }
            for a in oldest
        ]
    return {
        "span": {
            "start": label(span.start, rollups.HOUR),
            "end": label(span.end, rollups.HOUR),
        },
        "trend": trend(filters, span),
        "errors": top_errors(filters, span, base),
        "resolution": resolution(filters, span),
        "pending": pending,
    }
