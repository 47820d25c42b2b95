"""The recorded webhook events: newest first, filtered by type and id, a cursor per page."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from attempts.models import Attempt, WebhookEvent
from attempts.webhooks import DOCUMENTED_ACTION_ATTEMPT_EVENTS

PAGE_SIZE = 50
TYPES_SECONDS = 30
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Cursor:
    """A position in the events list: the (received_at, id) of a row, as `<microseconds>_<id>`."""

    received_at: datetime
    pk: int

    @classmethod
    def of(cls, event: WebhookEvent) -> "Cursor":
        return cls(event.received_at, event.pk)

    @classmethod
    def decode(cls, value: str) -> "Cursor":
        micros, _, pk = value.partition("_")
        try:
            return cls(EPOCH + timedelta(microseconds=int(micros)), int(pk))
        except (ValueError, OverflowError) as e:
            raise ValueError("not a list position") from e

    def encode(self) -> str:
        return f"{(self.received_at - EPOCH) // timedelta(microseconds=1)}_{self.pk}"


def event_types_ever_recorded() -> list[str]:
    """The distinct event types, one index seek per type (not a scan), cached for a while."""

    def compute() -> list[str]:
        table = connection.ops.quote_name(WebhookEvent._meta.db_table)
        sql = (
            f"WITH RECURSIVE t(v) AS (SELECT MIN(event_type) FROM {table} "  # noqa: S608
            f"UNION ALL SELECT (SELECT MIN(event_type) FROM {table} WHERE event_type > t.v) "
            "FROM t WHERE t.v IS NOT NULL) SELECT v FROM t WHERE v IS NOT NULL"
        )
        with connection.cursor() as c:
            c.execute(sql)
            return [v for (v,) in c.fetchall() if v]

    return cache.get_or_set("events:types", compute, TYPES_SECONDS)


class AnyEventTypeField(forms.MultipleChoiceField):
    """Offers the recorded and documented types, accepts any: unknown types must be filterable."""

    def valid_value(self, value: str) -> bool:
        return 0 < len(value) <= 255


class EventFilterForm(forms.Form):
    event_type = AnyEventTypeField(required=False, widget=forms.CheckboxSelectMultiple)
    q = forms.CharField(required=False, max_length=255)
    after = forms.CharField(required=False, max_length=64)
    before = forms.CharField(required=False, max_length=64)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        types = set(DOCUMENTED_ACTION_ATTEMPT_EVENTS) | set(event_types_ever_recorded())
        if hasattr(self.data, "getlist"):
            types |= {t for t in self.data.getlist("event_type") if 0 < len(t) <= 255}
        self.fields["event_type"].choices = [(t, t) for t in sorted(types)]

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
        if data.get("after") and data.get("before"):
            raise forms.ValidationError("Give either after or before, not both.")
        return data

    def filters(self) -> dict[str, Any]:
        return {k: self.cleaned_data.get(k) for k in ("event_type", "q")}


def filtered_events(filters: dict[str, Any]) -> QuerySet[WebhookEvent]:
    """Every event the filters select, newest first (by received_at, then id)."""
    qs = WebhookEvent.objects.all()
    if filters.get("event_type"):
        qs = qs.filter(event_type__in=filters["event_type"])
    if q := filters.get("q"):
        # An event id, or the id of the attempt it concerns: two index lookups, no join.
        attempt_pk = Attempt.objects.filter(action_attempt_id=q).values_list("pk", flat=True)
        qs = qs.filter(Q(event_id=q) | Q(attempt_id__in=list(attempt_pk)))
    return qs.order_by("-received_at", "-id")


@dataclass
class Page:
    events: list[WebhookEvent]
    newer: Cursor | None
    older: Cursor | None


def page_of(
    qs: QuerySet[WebhookEvent],
    after: Cursor | None = None,
    before: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """One page after or before a cursor: an index range, so a deep page costs what page 1 does."""
    qs = qs.select_related("attempt").only(
        "event_id",
        "event_type",
        "payload",
        "occurred_at",
        "received_at",
        "known_type",
        "attempt__action_attempt_id",
    )
    if before:
        ts, pk = before.received_at, before.pk
        rows = list(
            qs.filter(received_at__gte=ts)
            .filter(Q(received_at__gt=ts) | Q(id__gt=pk))
            .order_by("received_at", "id")[: size + 1]
        )
        more = len(rows) > size
        rows = rows[:size][::-1]
        return Page(
            rows, Cursor.of(rows[0]) if more else None, Cursor.of(rows[-1]) if rows else None
        )
    if after:
        ts, pk = after.received_at, after.pk
        qs = qs.filter(received_at__lte=ts).filter(Q(received_at__lt=ts) | Q(id__lt=pk))
    rows = list(qs[: size + 1])
    older = Cursor.of(rows[size - 1]) if len(rows) > size else None
    rows = rows[:size]
    return Page(rows, Cursor.of(rows[0]) if after and rows else None, older)


def attempt_id_of(event: WebhookEvent) -> str:
    """The attempt an event concerns: the linked one, else the id its payload names."""
    if event.attempt_id:
        return event.attempt.action_attempt_id
    value = event.payload.get("action_attempt_id") if isinstance(event.payload, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 255 else ""


def link(request: HttpRequest, path: str = "/events/", **position: str) -> str:
    """The same filters at another position (or none: the newest page, the export)."""
    params = request.GET.copy()
    for name in ("after", "before"):
        params.pop(name, None)
    params.update(position)
    return f"{path}?{params.urlencode()}"


@require_GET
@login_required
@vary_on_headers("HX-Request")
def event_list(request: HttpRequest) -> HttpResponse:
    form = EventFilterForm(request.GET)
    # Only the results for htmx's in-place updates; a history restore wants the whole page.
    partial = request.htmx.target == "results" and not request.htmx.history_restore_request
    template = "events/_results.html" if partial else "events/list.html"
    if not form.is_valid():
        return render(request, template, {"form": form}, status=400)
    after, before = form.cleaned_data["after"], form.cleaned_data["before"]
    page = page_of(filtered_events(form.filters()), after, before)
    paged = bool(after or before)
    rows = [
        {
            "event": e,
            "attempt_id": attempt_id_of(e),
            "pretty": json.dumps(e.payload, indent=2, sort_keys=True, ensure_ascii=False),
        }
        for e in page.events
    ]
    context = {
        "form": form,
        "rows": rows,
        "newer": link(request, before=page.newer.encode()) if page.newer else "",
        "older": link(request, after=page.older.encode()) if page.older else "",
        "first_page": link(request) if paged else "",
        "export": link(request, "/events/export.csv"),
    }
    return render(request, template, context)
