"""The attempts list's filters, as a form and as the one ordered queryset they select.

`filtered_attempts()` turns valid filters into the attempts they select, newest first: the list
pages through it (attempts/listing.py), the CSV export streams all of it, the counts narrow their
rollups with `narrowed()` (attempts/counts.py).

`q` matches an attempt id exactly, or else the ids that contain it (3 characters or more,
through the trigram index of attempts/search.py) or start with it (shorter). `not_found` keeps
the attempts Seam no longer has (attempts.merge.left_out); the rollups know nothing of it, so
the counts read those few attempts directly.
"""

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.functions import Substr
from django.http import QueryDict
from django.utils import timezone

from attempts import search
from attempts.models import DOCUMENTED_ACTION_TYPES, Attempt, Status
from attempts.paging import AnyChoiceField, PagedFilterForm, distinct_values

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
FILTER_KEYS = ("action_type", "status", "error_type", "not_found", "q", "last", "since", "until")


def action_types_ever_recorded() -> list[str]:
    return distinct_values(Attempt, "action_type", "attempts:action-types")


def error_types_ever_recorded() -> list[str]:
    return distinct_values(Attempt, "error_type", "attempts:error-types")


class AttemptFilterForm(PagedFilterForm):
    field_order = [
        "action_type",
        "status",
        "error_type",
        "not_found",
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
    not_found = forms.BooleanField(required=False, label="Not found on Seam")
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
        picked["not_found"] = bool(self.is_valid() and self.cleaned_data.get("not_found"))
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
    if filters.get("not_found"):
        qs = qs.filter(not_found_at__isnull=False)
    if filters.get("q"):
        q = filters["q"]
        qs = qs.annotate(id_prefix=Substr("action_attempt_id", 1, len(q))).filter(id_matches(q))
    return qs.order_by("-first_seen_at", "-id")
