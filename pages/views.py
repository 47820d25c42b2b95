"""The attempts list, its live poll, an attempt's page, and what operators ask of Seam there."""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from accounts.access import login_required, operator_required
from attempts.counts import attempt_stats, stats_key
from attempts.filters import AttemptFilterForm
from attempts.listing import list_page
from attempts.models import Attempt, OperatorAction
from attempts.paging import PAGE_SIZE
from attempts.recorded import Since, since_now
from dashboard.web import form_errors, is_partial, parse_newest, pretty_json
from pages import poll
from pages.fragments import rows_html, stats_fragment
from pages.templatetags.attempt_tags import version
from seam import live
from seam.client import SeamError, SeamNotFound


@login_required
@require_GET
def attempt_list(request: HttpRequest) -> HttpResponse:
    form = AttemptFilterForm(request.GET)
    minutes = form.threshold_minutes()
    context: dict[str, Any] = {"form": form, "picked": form.picked(), **poll.live_context(minutes)}
    status = 200
    if form.is_valid():
        filters = form.filters()
        # Before the page's query: an attempt recorded in between comes twice, never not at all.
        since = since_now()
        page = list_page(filters, form.cleaned_data["after"], form.cleaned_data["before"])
        seam = live.seam_state()
        stats = attempt_stats(filters, minutes)
        context |= {
            "page": page,
            "page_size": PAGE_SIZE,
            "page_position": bool(form.cleaned_data["after"] or form.cleaned_data["before"]),
            "page_query": request.GET.urlencode(),
            "newest": since.newest,
            "in_flight": since.token(),
            "rows_html": rows_html(page.rows, context["stuck_before"], minutes),
            "stats": stats,
            "stats_html": stats_fragment(request.GET, stats_key(filters, minutes), stats),
            "seam": seam,
            # Ended by a webhook, so without error or result: the first poll fetches them.
            "any_unfetched": seam.configured and any(not a.payload_fetched for a in page.rows),
        }
    else:
        status = 400
    template = "attempts/_list.html" if is_partial(request, "results") else "attempts/list.html"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_GET
@never_cache
def attempt_poll(request: HttpRequest) -> HttpResponse:
    """A live list's poll, one request per page (see pages/poll.py). A hidden tab (hidden=1)
    asks Seam for nothing on its own behalf and skips the counts."""
    form = AttemptFilterForm(request.GET)
    try:
        known = poll.parse_versions(request.GET.getlist("v"))
        newest = parse_newest(request.GET.get("newest"))
        since = None if newest is None else Since.parse(newest, request.GET.get("in_flight", ""))
    except ValueError as e:
        return HttpResponseBadRequest(str(e))
    if not form.is_valid():
        return HttpResponseBadRequest(form_errors(form))
    update = poll.changes(
        form.filters(),
        form.threshold_minutes(),
        known,
        since,
        shown=request.GET,
        hidden=request.GET.get("hidden") == "1",
    )
    if update is None:
        return HttpResponse()
    return render(request, "attempts/_poll.html", update)


def detail_context(attempt: Attempt) -> dict[str, Any]:
    history = list(attempt.history.order_by("at", "id"))
    events = list(attempt.events.order_by("-received_at", "-id")[:50])
    return {
        "attempt": attempt,
        "error_json": pretty_json(attempt.error) if attempt.error is not None else "",
        "result_json": pretty_json(attempt.result) if attempt.result is not None else "",
        # Live while Seam may still tell more: pending, or ended without its error or result.
        "live": live.needs_fetch(attempt),
        "history": history,
        "events": events,
        # Changes with the attempt, its history or its events: the page's poll sends it back.
        "stamp": f"{version(attempt)}.{len(history)}.{events[0].pk if events else 0}",
        "seam": live.seam_state(),
        "poll_seconds": settings.SEAM_POLL_SECONDS,
    }


def error_page(request: HttpRequest, status: int, title: str, reason: str) -> HttpResponse:
    context = {"title": title, "reason": reason}
    return render(request, "attempts/problem.html", context, status=status)


def fetch_unrecorded(request: HttpRequest, action_attempt_id: str) -> Attempt | HttpResponse:
    """Fetches an attempt never recorded from Seam, and records it from then on. The fetch is
    the system's: whoever opens the link, no operator action is recorded for it."""
    if not settings.SEAM_API_KEY:
        reason = "It is not recorded here, and no SEAM_API_KEY is set to look it up in Seam."
        return error_page(request, 404, "Attempt not found", reason)
    try:
        merged = live.track(action_attempt_id)
    except SeamNotFound:
        return error_page(request, 404, "Attempt not found", "Seam has no attempt with this id.")
    except SeamError as e:
        return error_page(request, 503, "Seam did not answer", f"Try again in a moment. {e}")
    if merged is None:
        return error_page(request, 502, "Unexpected answer", "Seam's answer was not an attempt.")
    return merged.attempt


@login_required
@require_GET
def attempt_detail(request: HttpRequest, action_attempt_id: str) -> HttpResponse:
    attempt = Attempt.objects.filter(action_attempt_id=action_attempt_id).first()
    if attempt is None:
        fetched = fetch_unrecorded(request, action_attempt_id)
        if isinstance(fetched, HttpResponse):
            return fetched
        attempt = fetched
    elif live.needs_fetch(attempt) and request.GET.get("hidden") != "1":
        if live.refresh([attempt]).fetched:
            attempt.refresh_from_db()

    context = detail_context(attempt)
    if is_partial(request, "detail"):
        # The page's poll: 204 while nothing changed, the new section otherwise.
        if context["stamp"] == request.GET.get("v") and context["live"]:
            response = HttpResponse(status=204)
        else:
            response = render(request, "attempts/_detail.html", context)
            if not context["live"]:
                response.status_code = HttpResponseStopPolling.status_code
    else:
        response = render(request, "attempts/detail.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@operator_required("track an attempt")
@require_POST
def attempt_track(request: HttpRequest) -> HttpResponse:
    action_attempt_id = request.POST.get("action_attempt_id", "").strip()
    if not action_attempt_id or len(action_attempt_id) > 255 or "/" in action_attempt_id:
        return error_page(
            request, 400, "Not an attempt id", "Paste an action attempt id (no slashes)."
        )
    if not Attempt.objects.filter(action_attempt_id=action_attempt_id).exists():
        tracked = fetch_unrecorded(request, action_attempt_id)
        if isinstance(tracked, HttpResponse):
            return tracked
        OperatorAction.objects.create(
            user=request.user,
            kind=OperatorAction.Kind.TRACK,
            action_attempt_id=tracked.action_attempt_id,
            attempt=tracked,
        )
        messages.success(request, "Tracking this attempt from now on.")
    return redirect("attempt-detail", action_attempt_id=action_attempt_id)


@operator_required("refresh attempts from Seam")
@require_POST
def attempt_refresh(request: HttpRequest, action_attempt_id: str) -> HttpResponse:
    """An operator's explicit refresh: asks Seam now, whatever the freshness marks say."""
    attempt = get_object_or_404(Attempt, action_attempt_id=action_attempt_id)
    if not settings.SEAM_API_KEY:
        messages.error(request, "No SEAM_API_KEY is set: there is no Seam to ask.")
        return redirect("attempt-detail", action_attempt_id=action_attempt_id)
    OperatorAction.objects.create(
        user=request.user,
        kind=OperatorAction.Kind.REFRESH,
        action_attempt_id=action_attempt_id,
        attempt=attempt,
    )
    state = live.fetch([action_attempt_id])
    if state.stale:
        messages.error(request, f"Seam did not answer: {state.error}")
    elif not Attempt.objects.filter(pk=attempt.pk, missing_since__isnull=True).exists():
        messages.warning(request, "Seam's answer did not include this attempt.")
    else:
        messages.success(request, "Refreshed from Seam.")
    return redirect("attempt-detail", action_attempt_id=action_attempt_id)


@login_required
@require_GET
@never_cache
def cache_notice(request: HttpRequest) -> HttpResponse:
    """The notice "live refresh paused: the cache is unavailable", polled by itself while it is
    shown, so that it leaves every page (even one without a live poll) when the cache is back."""
    return render(request, "_cache_notice.html")
