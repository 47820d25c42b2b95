"""The attempts list's query: its filters, its keyset pagination, and the counts shown above it.

`filtered_attempts()` turns valid filters into the one ordered queryset (newest first): the list
pages through it with a cursor, the CSV export streams all of it.

`q` matches an attempt id exactly, or else the ids that start with it: a prefix is what an
operator pastes from a ticket, and unlike a substring it can use the id's unique index.
"""

import hashlib
import heapq
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice, product
from typing import Any

from django import forms
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Substr
from django.http import QueryDict
from django.utils import timezone

from attempts.models import DOCUMENTED_ACTION_TYPES, Attempt, Status

PAGE_SIZE = 50
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
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FILTER_KEYS = ("action_type", "status", "q", "last", "since", "until")


@dataclass(frozen=True)
class Cursor:
    """A position in the list: the (first_seen_at, id) of a row, as `<microseconds>_<id>`."""

    first_seen_at: datetime
    pk: int

    @classmethod
    def of(cls, attempt: Attempt) -> "Cursor":
        return cls(attempt.first_seen_at, attempt.pk)

    @classmethod
    def decode(cls, value: str) -> "Cursor":
        micros, _, pk = value.partition("_")
        try:
            return cls(EPOCH + timedelta(microseconds=int(micros)), int(pk))
        except (ValueError, OverflowError) as e:
            raise ValueError("not a list position") from e

    def encode(self) -> str:
        return f"{(self.first_seen_at - EPOCH) // timedelta(microseconds=1)}_{self.pk}"


def action_types_ever_recorded() -> list[str]:
    """The distinct action types, by skipping along the type index (one seek per type, not a
    scan of every row), cached for TYPES_SECONDS."""

    def compute() -> list[str]:
        table = connection.ops.quote_name(Attempt._meta.db_table)
        sql = (
            f"WITH RECURSIVE t(v) AS (SELECT MIN(action_type) FROM {table} "  # noqa: S608
            f"UNION ALL SELECT (SELECT MIN(action_type) FROM {table} WHERE action_type > t.v) "
            "FROM t WHERE t.v IS NOT NULL) SELECT v FROM t WHERE v IS NOT NULL"
        )
        with connection.cursor() as c:
            c.execute(sql)
            return [v for (v,) in c.fetchall() if v]

    return cache.get_or_set("attempts:action-types", compute, TYPES_SECONDS)


class AnyActionTypeField(forms.MultipleChoiceField):
    """Offers the known types but accepts any: Seam adds types, and a new one must be filterable."""

    def valid_value(self, value: str) -> bool:
        return 0 < len(value) <= 100


class AttemptFilterForm(forms.Form):
    action_type = AnyActionTypeField(required=False, widget=forms.CheckboxSelectMultiple)
    status = forms.MultipleChoiceField(
        choices=Status.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    q = forms.CharField(required=False, max_length=255)
    last = forms.ChoiceField(choices=LAST_CHOICES, required=False)
    since = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    until = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    after = forms.CharField(required=False, max_length=64)
    before = forms.CharField(required=False, max_length=64)
    stuck_minutes = forms.IntegerField(required=False, min_value=1, max_value=7 * 24 * 60)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        types = set(DOCUMENTED_ACTION_TYPES) | set(action_types_ever_recorded())
        if hasattr(self.data, "getlist"):
            types |= {t for t in self.data.getlist("action_type") if 0 < len(t) <= 100}
        self.fields["action_type"].choices = [(t, t) for t in sorted(types)]

    def _clean_cursor(self, name: str) -> Cursor | None:
        value = self.cleaned_data.get(name)
        if not value:
            return None
        try:
            return Cursor.decode(value)
        except ValueError as e:
            raise forms.ValidationError("Not a position in the list.") from e

    def clean_after(self) -> Cursor | None:
        return self._clean_cursor("after")

    def clean_before(self) -> Cursor | None:
        return self._clean_cursor("before")

    def clean_q(self) -> str:
        return self.cleaned_data["q"].strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The time range ends before it starts.")
        if data.get("after") and data.get("before"):
            raise forms.ValidationError("Give either after or before, not both.")
        return data

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
        for name in ("action_type", "status", "last"):
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
    """Exactly this id if recorded, else the ids starting with it."""
    if Attempt.objects.filter(action_attempt_id=q).exists():
        return Q(action_attempt_id=q)
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


def filtered_attempts(filters: dict[str, Any]) -> QuerySet[Attempt]:
    """Every attempt the filters select, newest first (by first_seen_at, then id)."""
    qs = Attempt.objects.all()
    if filters.get("action_type"):
        qs = qs.filter(action_type__in=filters["action_type"])
    if filters.get("status"):
        qs = qs.filter(status__in=filters["status"])
    if since := since_of(filters):
        qs = qs.filter(first_seen_at__gte=since)
    if filters.get("until"):
        qs = qs.filter(first_seen_at__lt=filters["until"])
    if filters.get("q"):
        q = filters["q"]
        qs = qs.annotate(id_prefix=Substr("action_attempt_id", 1, len(q))).filter(id_matches(q))
    return qs.order_by("-first_seen_at", "-id")


@dataclass
class Page:
    attempts: list[Attempt]
    newer: Cursor | None
    older: Cursor | None


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


def window(qs: QuerySet[Attempt], after: Cursor | None, before: Cursor | None, limit: int):
    """Up to `limit` rows of `qs` (ordered newest first) next to a cursor, nearest first: an
    index range, so page 1,000 costs what page 1 does."""
    qs = qs.defer("result")
    if before:
        ts, pk = before.first_seen_at, before.pk
        qs = qs.filter(first_seen_at__gte=ts).filter(Q(first_seen_at__gt=ts) | Q(id__gt=pk))
        qs = qs.order_by("first_seen_at", "id")
    elif after:
        ts, pk = after.first_seen_at, after.pk
        qs = qs.filter(first_seen_at__lte=ts).filter(Q(first_seen_at__lt=ts) | Q(id__lt=pk))
    return list(qs[:limit])


def page_of(
    querysets: QuerySet[Attempt] | list[QuerySet[Attempt]],
    after: Cursor | None = None,
    before: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """A page of a queryset, or of the union of several (disjoint, each newest first). One row
    more than the page tells whether another page exists."""
    if isinstance(querysets, QuerySet):
        querysets = [querysets]
    windows = [window(qs, after, before, size + 1) for qs in querysets]
    merged = heapq.merge(*windows, key=lambda a: (a.first_seen_at, a.pk), reverse=not before)
    rows = list(islice(merged, size + 1))
    more = len(rows) > size
    rows = rows[:size]
    if before:
        rows.reverse()
        return Page(
            rows, Cursor.of(rows[0]) if more else None, Cursor.of(rows[-1]) if rows else None
        )
    older = Cursor.of(rows[-1]) if more else None
    return Page(rows, Cursor.of(rows[0]) if after and rows else None, older)


def stats_key(filters: dict[str, Any], stuck_minutes: int) -> str:
    canonical = {k: sorted(v) if isinstance(v, list) else v for k, v in filters.items()}
    raw = json.dumps([canonical, stuck_minutes], sort_keys=True, default=str)
    return "attempts:stats:" + hashlib.sha256(raw.encode()).hexdigest()[:32]


def attempt_stats(filters: dict[str, Any], stuck_minutes: int) -> dict[str, Any]:
    """Counts by action_type and status, the error rate and the stuck count for these filters.

    Computed at most once per STATS_SECONDS for all viewers of the same filters: the last result
    is kept longer, and one process (the holder of a cache lock) recomputes it while the others
    keep serving it.
    """
    key = stats_key(filters, stuck_minutes)
    stats = cache.get(key)
    if stats and stats["computed_at"] > timezone.now() - timedelta(seconds=STATS_SECONDS):
        return stats
    locked = cache.add(key + ":lock", 1, 30)
    if stats and not locked:
        return stats  # another process is recomputing it
    try:
        stats = compute_stats(filters, stuck_minutes)
        cache.set(key, stats, STATS_SECONDS * 20)
    finally:
        if locked:
            cache.delete(key + ":lock")
    return stats


BAR_WIDTH = 200


def compute_stats(filters: dict[str, Any], stuck_minutes: int) -> dict[str, Any]:
    now = timezone.now()
    qs = filtered_attempts(filters).order_by()
    counts: dict[str, dict[str, int]] = {}
    for action_type, status, n in qs.values_list("action_type", "status").annotate(n=Count("id")):
        counts.setdefault(action_type, {}).setdefault(status, 0)
        counts[action_type][status] += n
    stuck_before = now - timedelta(minutes=stuck_minutes)
    stuck = qs.filter(status=Status.PENDING, first_seen_at__lt=stuck_before).count()

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
