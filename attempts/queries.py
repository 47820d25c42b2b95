"""The attempts list's query: its filters, its keyset pagination, and the counts shown above it.

`filtered_attempts()` turns valid filters into the one ordered queryset (newest first): the list
pages through it with a cursor, the CSV export streams all of it.

`q` matches an attempt id exactly, or else the ids that contain it (3 characters or more,
through the trigram index of attempts/search.py) or start with it (shorter).

The counts above the list read whole days and hours from the rollups (attempts/rollups.py), and
only the partial hours at the edges of the range from the attempts themselves.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from itertools import product
from typing import Any

from django import forms
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Model, Q, QuerySet
from django.db.models.functions import Substr
from django.http import QueryDict
from django.utils import timezone

from attempts import paging, rollups, search
from attempts.models import DOCUMENTED_ACTION_TYPES, Attempt, DailyCount, HourlyCount, Status
from attempts.paging import (
    PAGE_SIZE,
    AnyChoiceField,
    Cursor,
    Page,
    PagedFilterForm,
    distinct_values,
)

# The action types ever recorded and the counts above the list are computed at most this often.
TYPES_SECONDS = 30
STATS_SECONDS = 30
DEFAULT_STUCK_MINUTES = 15

LAST_CHOICES = [
    ("", "Any time"),
    ("1h", "Last hour"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
]
LAST_DELTAS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
FILTER_KEYS = ("action_type", "status", "error_type", "q", "last", "since", "until")


def action_types_ever_recorded() -> list[str]:
    return distinct_values(Attempt, "action_type", "attempts:action-types", TYPES_SECONDS)


def error_types_ever_recorded() -> list[str]:
    return distinct_values(Attempt, "error_type", "attempts:error-types", TYPES_SECONDS)


class AttemptFilterForm(PagedFilterForm):
    field_order = [
        "action_type",
        "status",
        "error_type",
        "q",
        "last",
        "since",
        "until",
        "after",
        "before",
    ]

    action_type = AnyChoiceField(
        max_length=100, required=False, widget=forms.CheckboxSelectMultiple
    )
    status = forms.MultipleChoiceField(
        choices=Status.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    error_type = AnyChoiceField(max_length=100, required=False, widget=forms.CheckboxSelectMultiple)
    last = forms.ChoiceField(choices=LAST_CHOICES, required=False)
    since = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    until = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    stuck_minutes = forms.IntegerField(required=False, min_value=1, max_value=7 * 24 * 60)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offer("action_type", set(DOCUMENTED_ACTION_TYPES) | set(action_types_ever_recorded()))
        self.offer("error_type", set(error_types_ever_recorded()))

    def clean(self) -> dict[str, Any]:
        since, until = self.cleaned_data.get("since"), self.cleaned_data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The time range ends before it starts.")
        return super().clean()

    def threshold_minutes(self) -> int:
        """After how many minutes a pending attempt counts as stuck."""
        value = self.cleaned_data.get("stuck_minutes") if self.is_valid() else None
        return value or DEFAULT_STUCK_MINUTES

    def picked(self) -> dict[str, Any]:
        """The choices as the page shows them, checked as in the URL: rendered from plain dicts,
        which a template reads much faster than Django's widgets render themselves."""
        data = self.data if hasattr(self.data, "getlist") else QueryDict()

        def options(name: str) -> list[dict[str, Any]]:
            chosen = set(data.getlist(name))
            return [
                {"value": value, "label": label, "checked": value in chosen}
                for value, label in self.fields[name].choices
            ]

        picked: dict[str, Any] = {
            name: data.get(name, "") for name in ("q", "since", "until", "stuck_minutes")
        }
        for name in ("action_type", "status", "error_type", "last"):
            picked[name] = options(name)
            picked[f"{name}_count"] = sum(c["checked"] for c in picked[name])
        return picked

    def filters(self) -> dict[str, Any]:
        """The cleaned filters that select rows (not the page position, not the threshold)."""
        return {k: self.cleaned_data.get(k) for k in FILTER_KEYS}

    def selected_count(self, name: str) -> int:
        return len(self.cleaned_data.get(name) or []) if self.is_valid() else 0


def since_of(filters: dict[str, Any], now: datetime | None = None) -> datetime | None:
    bounds = [filters["since"]] if filters.get("since") else []
    if filters.get("last"):
        bounds.append((now or timezone.now()) - LAST_DELTAS[filters["last"]])
    return max(bounds) if bounds else None


# A prefix matching more ids than this is searched newest first, not through the id index: about
# where sorting the matches starts to cost more than scanning for a page of them, at a million.
BROAD_PREFIX = 5000


def id_matches(q: str) -> Q:
    """Exactly this id if recorded, else the ids containing it (or, shorter than a trigram,
    starting with it)."""
    if Attempt.objects.filter(action_attempt_id=q).exists():
        return Q(action_attempt_id=q)
    if len(q) >= search.MIN_CONTAINS:
        return search.contains(Attempt, "action_attempt_id", q)
    match = Q(action_attempt_id__startswith=q)
    if connection.vendor != "sqlite":
        return match  # PostgreSQL weighs the prefix against the order itself, from statistics
    # SQLite's LIKE never uses the index; this range does (ids are compared as plain bytes).
    upper = q[:-1] + chr(min(ord(q[-1]) + 1, 0x10FFFF))
    narrow = match & Q(action_attempt_id__gte=q, action_attempt_id__lt=upper)
    if not Attempt.objects.filter(narrow).values("pk")[BROAD_PREFIX : BROAD_PREFIX + 1].exists():
        return narrow  # few matches: read them by id and sort them
    # Many matches: walk the list's own index newest first and stop at a page. SQLite would
    # take the id index for a plain comparison, so compare an expression instead.
    return Q(id_prefix=q)


def narrowed(qs: QuerySet, filters: dict[str, Any]) -> QuerySet:
    """Attempts, or their rollups, of the filters' action types, statuses and error types."""
    if filters.get("action_type"):
        qs = qs.filter(action_type__in=filters["action_type"])
    if filters.get("status"):
        qs = qs.filter(status__in=filters["status"])
    if filters.get("error_type"):
        # The filter's values are never empty; saying so lets SQLite use the partial index.
        qs = qs.filter(error_type__in=filters["error_type"]).exclude(error_type="")
    return qs


def filtered_attempts(filters: dict[str, Any]) -> QuerySet[Attempt]:
    """Every attempt the filters select, newest first (by first_seen_at, then id)."""
    qs = narrowed(Attempt.objects.all(), filters)
    if since := since_of(filters):
        qs = qs.filter(first_seen_at__gte=since)
    if filters.get("until"):
        qs = qs.filter(first_seen_at__lt=filters["until"])
    if filters.get("q"):
        q = filters["q"]
        qs = qs.annotate(id_prefix=Substr("action_attempt_id", 1, len(q))).filter(id_matches(q))
    return qs.order_by("-first_seen_at", "-id")


# Beyond this many (type, status) combinations a page is one query with a sort instead.
MAX_MERGED = 24


def list_page(
    filters: dict[str, Any],
    after: Cursor | None = None,
    before: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """One page of the filtered list. Several types or statuses would make the database sort
    every matching row; instead each (type, status) pair reads its own index range in order,
    at most one page of it, and the pages are merged."""
    if filters.get("error_type"):
        # Each error type reads its own range of the error-type index.
        kinds = filters["error_type"]
        if len(kinds) == 1 or len(kinds) > MAX_MERGED or filters.get("q"):
            return page_of([filtered_attempts(filters)], after, before, size)
        querysets = [filtered_attempts({**filters, "error_type": [k]}) for k in kinds]
        return page_of(querysets, after, before, size)
    types = filters.get("action_type") or [None]
    statuses = filters.get("status") or (Status.values if filters.get("action_type") else [None])
    pairs = list(product(types, statuses))
    if len(pairs) == 1 or len(pairs) > MAX_MERGED or filters.get("q"):
        return page_of([filtered_attempts(filters)], after, before, size)
    querysets = [
        filtered_attempts(
            {**filters, "action_type": [t] if t else None, "status": [s] if s else None}
        )
        for t, s in pairs
    ]
    return page_of(querysets, after, before, size)


def page_of(
    querysets: list[QuerySet[Attempt]],
    after: Cursor | None = None,
    before: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """A page of the union of several querysets (disjoint, each newest first)."""
    return paging.page_of(
        [qs.defer("result") for qs in querysets], "first_seen_at", after, before, size
    )


def stats_key(filters: dict[str, Any], stuck_minutes: int) -> str:
    return figures_key("attempts:stats", filters, stuck_minutes)


def figures_key(prefix: str, filters: dict[str, Any], *more: Any) -> str:
    """The cache key of figures computed for these filters (in any order) and arguments."""
    canonical = {k: sorted(v) if isinstance(v, list) else v for k, v in filters.items()}
    raw = json.dumps([canonical, *more], sort_keys=True, default=str)
    return f"{prefix}:" + hashlib.sha256(raw.encode()).hexdigest()[:32]


def attempt_stats(filters: dict[str, Any], stuck_minutes: int) -> dict[str, Any]:
    """Counts by action_type and status, the error rate and the stuck count for these filters."""
    return shared(stats_key(filters, stuck_minutes), lambda: compute_stats(filters, stuck_minutes))


def shared(key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """compute()'s figures, worked out at most once per STATS_SECONDS for all viewers of the
    same key: the last result is kept longer, and one process (the holder of a cache lock)
    recomputes it while the others keep serving it. The figures carry their `computed_at`."""
    figures = cache.get(key)
    if figures and figures["computed_at"] > timezone.now() - timedelta(seconds=STATS_SECONDS):
        return figures
    locked = cache.add(key + ":lock", 1, 30)
    if figures and not locked:
        return figures  # another process is recomputing them
    try:
        figures = {"computed_at": timezone.now(), **compute()}
        cache.set(key, figures, STATS_SECONDS * 20)
    finally:
        if locked:
            cache.delete(key + ":lock")
    return figures


BAR_WIDTH = 200


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
    if filters.get("q") or (since and until and since >= until):
        qs = filtered_attempts({**filters, "last": None}).order_by()
        if since:
            qs = qs.filter(first_seen_at__gte=since)
        return list(qs.values_list(*by).annotate(n=Count("id")))
    narrow = partial(narrowed, filters=filters)
    start, end = whole_hours(filters, now)
    parts = rollups.parts(HourlyCount, DailyCount, narrow, start, end, by)
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
        parts += rollups.parts(HourlyCount, DailyCount, narrow, hour, hour + rollups.HOUR, by)
        if hour < lo:
            parts.append(attempts(hour, lo, -1))
        if hi < hour + rollups.HOUR:
            parts.append(attempts(hi, hour + rollups.HOUR, -1))
    return rollups.united(parts)


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
    before `before`: all but the few first seen since, read from the status index. An outage
    that leaves a hundred thousand attempts pending costs no more to count than a quiet day."""
    until = filters.get("until") or now
    since = max(since_of(filters, now) or before, before)
    if until <= since:
        return pending
    # The time range as exactly two bounds: given more, SQLite reads the range from the list's
    # index instead of the pending attempts' one.
    anytime = filtered_attempts({**filters, "last": None, "since": None, "until": None})
    recent = anytime.order_by().filter(
        status=Status.PENDING, first_seen_at__gte=since, first_seen_at__lt=until
    )
    return pending - recent.count()


def compute_stats(filters: dict[str, Any], stuck_minutes: int) -> dict[str, Any]:
    now = timezone.now()
    counts: dict[str, dict[str, int]] = {}
    for action_type, status, n in counted(filters, now):
        counts.setdefault(action_type, {}).setdefault(status, 0)
        counts[action_type][status] += n
    stuck_before = now - timedelta(minutes=stuck_minutes)
    all_pending = sum(c.get(Status.PENDING, 0) for c in counts.values())
    stuck = stuck_count(filters, now, stuck_before, all_pending)

    widest = max((sum(c.values()) for c in counts.values()), default=0) or 1
    rows = []
    for action_type, c in sorted(counts.items(), key=lambda kv: -sum(kv[1].values())):
        x = 0.0
        segments = []
        for status in (Status.SUCCESS, Status.ERROR, Status.PENDING):
            width = BAR_WIDTH * c.get(status, 0) / widest
            if width:
                # As text: the template would otherwise localize every number, slowly.
                segments.append({"status": str(status), "x": f"{x:.1f}", "width": f"{width:.1f}"})
            x += width
        success, error, pending = (
            c.get(s, 0) for s in (Status.SUCCESS, Status.ERROR, Status.PENDING)
        )
        rows.append(
            {
                "action_type": action_type,
                "total": success + error + pending,
                "success": success,
                "error": error,
                "pending": pending,
                "segments": segments,
                "text": {
                    "total": str(success + error + pending),
                    "summary": f"{success} success, {error} error, {pending} pending",
                    "legend": f"{error} err · {pending} pend",
                },
            }
        )
    ended = sum(r["success"] + r["error"] for r in rows)
    errors = sum(r["error"] for r in rows)
    return {
        "types": rows,
        "total": sum(r["total"] for r in rows),
        "errors": errors,
        "ended": ended,
        "error_rate": errors / ended if ended else None,
        "error_percent": round(100 * errors / ended, 1) if ended else None,
        "stuck": stuck,
        "stuck_minutes": stuck_minutes,
        "stuck_before": stuck_before,
        "stuck_until": stuck_before.strftime("%Y-%m-%dT%H:%M:%S"),
        "computed_at": now,
        "bar_width": BAR_WIDTH,
        "poll_seconds": settings.SEAM_POLL_SECONDS,
    }


# How many attempts recorded since a page's newest one a poll looks at, at most.
RECORDED_SINCE_WINDOW = 1000


def newest_pk(model: type[Model] = Attempt) -> int:
    """The newest row recorded: a live page sees those recorded after it."""
    return model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def recorded_after(filtered: QuerySet, pk: int, limit: int = PAGE_SIZE) -> tuple[list, int, int]:
    """The rows of `filtered` recorded after row `pk`: the newest `limit` of them (in the
    queryset's order), how many there are, and the pk to look after next time.

    The primary key's range alone picks the candidates (at most RECORDED_SINCE_WINDOW of them,
    the rest left to the next look); the filters then apply to those rows only, by primary key,
    so a live page's poll costs the same at a million rows whatever its filters."""
    window = list(
        filtered.model.objects.filter(pk__gt=pk)
        .order_by("pk")
        .values_list("pk", flat=True)[:RECORDED_SINCE_WINDOW]
    )
    if not window:
        return [], 0, pk
    matching = list(filtered.filter(pk__in=window))
    return matching[:limit], len(matching), window[-1]


def recorded_since(
    filters: dict[str, Any], pk: int, limit: int = PAGE_SIZE
) -> tuple[list[Attempt], int, int]:
    """The attempts recorded after attempt `pk` that the filters select (see recorded_after)."""
    return recorded_after(filtered_attempts(filters).defer("result"), pk, limit)
