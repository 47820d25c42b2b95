"""The recorded webhook events: newest first, filtered by type and id, a cursor per page."""

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from accounts.access import login_required
from attempts import paging
from attempts.events import EventFilterForm, filtered_events
from attempts.models import WebhookEvent
from attempts.paging import PAGE_SIZE, Cursor, Page
from attempts.recorded import Since, recorded_after, since_now
from dashboard.web import form_errors, is_partial, parse_newest, pretty_json


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
            "pretty": pretty_json(e.payload),
        }
        for e in events
    ]


@require_GET
@login_required
@vary_on_headers("HX-Request")
def event_list(request: HttpRequest) -> HttpResponse:
    form = EventFilterForm(request.GET)
    if request.htmx and "newest" in request.GET:
        return event_poll(request, form)
    template = "events/_results.html" if is_partial(request, "results") else "events/list.html"
    if not form.is_valid():
        return render(request, template, {"form": form}, status=400)
    after, before = form.cleaned_data["after"], form.cleaned_data["before"]
    # Before the page's query: an event recorded in between comes twice, never not at all.
    since = since_now(WebhookEvent)
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
        "newest": since.newest,
        "in_flight": since.token(),
        "page_query": request.GET.urlencode(),
        "page_size": PAGE_SIZE,
        "poll_seconds": settings.SEAM_POLL_SECONDS,
    }
    return render(request, template, context)


def event_poll(request: HttpRequest, form: EventFilterForm) -> HttpResponse:
    """A live events page's poll: the events matching its filters recorded since its position."""
    try:
        newest = parse_newest(request.GET["newest"], "event") or 0
        since = Since.parse(newest, request.GET.get("in_flight", ""))
    except ValueError as e:
        return HttpResponseBadRequest(str(e))
    if not form.is_valid():
        return HttpResponseBadRequest(form_errors(form))
    events, count, after = recorded_after(listed(filtered_events(form.filters())), since)
    if after == since:
        return HttpResponse()
    context = {"rows": event_rows(events), "new_count": count, "since": after}
    response = render(request, "events/_poll.html", context)
    patch_cache_control(response, no_store=True)
    return response
