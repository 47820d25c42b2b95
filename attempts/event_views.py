"""The recorded webhook events: newest first, filtered by type and id, a cursor per page."""

import json
from typing import Any

from django import forms
from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from attempts import paging, search
from attempts.models import Attempt, WebhookEvent
from attempts.paging import (
    PAGE_SIZE,
    AnyChoiceField,
    Cursor,
    Page,
    PagedFilterForm,
    distinct_values,
)
from attempts.queries import newest_pk, recorded_after
from attempts.views import form_errors, login_required
from attempts.webhooks import DOCUMENTED_ACTION_ATTEMPT_EVENTS

TYPES_SECONDS = 30


def event_types_ever_recorded() -> list[str]:
    return distinct_values(WebhookEvent, "event_type", "events:types", TYPES_SECONDS)


class EventFilterForm(PagedFilterForm):
    field_order = ["event_type", "q", "after", "before"]

    event_type = AnyChoiceField(max_length=255, required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        known = set(DOCUMENTED_ACTION_ATTEMPT_EVENTS) | set(event_types_ever_recorded())
        self.offer("event_type", known)

    def filters(self) -> dict[str, Any]:
        return {k: self.cleaned_data.get(k) for k in ("event_type", "q")}


def filtered_events(filters: dict[str, Any]) -> QuerySet[WebhookEvent]:
    """Every event the filters select, newest first (by received_at, then id)."""
    qs = WebhookEvent.objects.all()
    if filters.get("event_type"):
        qs = qs.filter(event_type__in=filters["event_type"])
    if q := filters.get("q"):
        # An event id or any part of one (3 characters or more), or the id of the attempt it
        # concerns: index lookups, no join.
        attempt_pk = Attempt.objects.filter(action_attempt_id=q).values_list("pk", flat=True)
        by_id = Q(event_id=q)
        if len(q) >= search.MIN_CONTAINS:
            by_id = search.contains(WebhookEvent, "event_id", q)
        qs = qs.filter(by_id | Q(attempt_id__in=list(attempt_pk)))
    return qs.order_by("-received_at", "-id")


def listed(qs: QuerySet[WebhookEvent]) -> QuerySet[WebhookEvent]:
    """The columns a row of the list shows."""
    return qs.select_related("attempt").only(
        "event_id",
        "event_type",
        "payload",
        "occurred_at",
        "received_at",
        "known_type",
        "attempt__action_attempt_id",
    )


def page_of(
    qs: QuerySet[WebhookEvent], after: Cursor | None = None, before: Cursor | None = None
) -> Page:
    """One page after or before a cursor: an index range, so a deep page costs what page 1 does."""
    return paging.page_of([listed(qs)], "received_at", after, before)


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


def event_rows(events: list[WebhookEvent]) -> list[dict[str, Any]]:
    return [
        {
            "event": e,
            "attempt_id": attempt_id_of(e),
            "cursor": Cursor.of(e, "received_at").encode(),
            "pretty": json.dumps(e.payload, indent=2, sort_keys=True, ensure_ascii=False),
        }
        for e in events
    ]


def parse_newest(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise ValueError("newest must be the whole number of the newest event seen.")
    return int(value)


@require_GET
@login_required
@vary_on_headers("HX-Request")
def event_list(request: HttpRequest) -> HttpResponse:
    form = EventFilterForm(request.GET)
    if request.htmx and "newest" in request.GET:
        return event_poll(request, form)
    # Only the results for htmx's in-place updates; a history restore wants the whole page.
    partial = request.htmx.target == "results" and not request.htmx.history_restore_request
    template = "events/_results.html" if partial else "events/list.html"
    if not form.is_valid():
        return render(request, template, {"form": form}, status=400)
    after, before = form.cleaned_data["after"], form.cleaned_data["before"]
    # Before the page's query: an event recorded in between comes twice, never not at all.
    newest = newest_pk(WebhookEvent)
    page = page_of(filtered_events(form.filters()), after, before)
    paged = bool(after or before)
    context = {
        "form": form,
        "rows": event_rows(page.rows),
        "newer": link(request, before=page.newer.encode()) if page.newer else "",
        "older": link(request, after=page.older.encode()) if page.older else "",
        "first_page": link(request) if paged else "",
        "paged": paged,
        "export": link(request, "/events/export.csv"),
        "newest": newest,
        "page_query": request.GET.urlencode(),
        "page_size": PAGE_SIZE,
        "poll_seconds": settings.SEAM_POLL_SECONDS,
    }
    return render(request, template, context)


def event_poll(request: HttpRequest, form: EventFilterForm) -> HttpResponse:
    """A live events page's poll: the events matching its filters recorded since its newest."""
    try:
        newest = parse_newest(request.GET["newest"])
    except ValueError as e:
        return HttpResponseBadRequest(str(e))
    if not form.is_valid():
        return HttpResponseBadRequest(form_errors(form))
    events, count, after = recorded_after(listed(filtered_events(form.filters())), newest)
    if after == newest:
        return HttpResponse()
    context = {"rows": event_rows(events), "new_count": count, "newest": after}
    response = render(request, "events/_poll.html", context)
    patch_cache_control(response, no_store=True)
    return response
