import json
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required as django_login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from attempts import live
from attempts.fragments import row, rows_html, stats_fragment
from attempts.models import Attempt, OperatorAction, Status
from attempts.queries import (
    DEFAULT_STUCK_MINUTES,
    PAGE_SIZE,
    AttemptFilterForm,
    attempt_stats,
    list_page,
    stats_key,
)
from attempts.refresh import merge_api_attempt
from attempts.seam import SeamError, SeamNotFound, get_client
from attempts.templatetags.attempt_tags import version


def login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's, but an htmx request (a poll from a page whose session expired) sends the whole
    page to the login, rather than swapping the login form into it."""
    guarded = django_login_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.htmx and not request.user.is_authenticated:
            next_url = request.htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(
                f"{settings.LOGIN_URL}?{urlencode({'next': next_url})}"
            )
        return guarded(request, *args, **kwargs)

    return wrapper


def is_partial(request: HttpRequest, target: str) -> bool:
    """An htmx request for one region of the page (a history restore wants the whole page)."""
    htmx = request.htmx
    return bool(htmx) and htmx.target == target and not htmx.history_restore_request


def live_context(stuck_minutes: int) -> dict[str, Any]:
    return {
        "poll_seconds": settings.SEAM_POLL_SECONDS,
        "stuck_minutes": stuck_minutes,
        "stuck_before": timezone.now() - timedelta(minutes=stuck_minutes),
    }


@login_required
@require_GET
def attempt_list(request: HttpRequest) -> HttpResponse:
    form = AttemptFilterForm(request.GET)
    minutes = form.threshold_minutes()
    context: dict[str, Any] = {"form": form, "picked": form.picked(), **live_context(minutes)}
    status = 200
    if form.is_valid():
        filters = form.filters()
        page = list_page(filters, form.cleaned_data["after"], form.cleaned_data["before"])
        seam = live.seam_state()
        stats = attempt_stats(filters, minutes)
        context |= {
            "page": page,
            "rows_html": rows_html(page.rows, context["stuck_before"], minutes),
            "stats": stats,
            "stats_html": stats_fragment(request, stats_key(filters, minutes), stats),
            "seam": seam,
            "any_pending": any(a.status == Status.PENDING for a in page.rows),
            # Ended by a webhook, so without error or result: one poll fetches them.
            "any_unfetched": seam.configured and any(not a.payload_fetched for a in page.rows),
        }
    else:
        status = 400
    template = "attempts/_list.html" if is_partial(request, "results") else "attempts/list.html"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def parse_versions(values: list[str]) -> dict[int, int]:
    """The rows a page shows, as `<pk>.<version>` pairs, to {pk: version}."""
    if len(values) > 2 * PAGE_SIZE:
        raise ValueError("too many rows")
    known = {}
    for value in values:
        pk, _, v = value.partition(".")
        known[int(pk)] = int(v)
    return known


@login_required
@require_GET
@never_cache
def attempt_poll(request: HttpRequest) -> HttpResponse:
    """A live list's poll: refreshes the rows in view from Seam (at most once per interval for
    every viewer) and answers only the rows that changed since the page last saw them."""
    try:
        known = parse_versions(request.GET.getlist("v"))
        stuck_minutes = int(request.GET.get("stuck_minutes") or DEFAULT_STUCK_MINUTES)
    except ValueError:
        return HttpResponseBadRequest("Expected v=<id>.<version> pairs and a whole stuck_minutes.")
    if not 1 <= stuck_minutes <= 7 * 24 * 60:
        return HttpResponseBadRequest("stuck_minutes must be between 1 and 10080.")

    in_view = Attempt.objects.filter(pk__in=known).defer("result")
    attempts = list(in_view)
    seam = live.refresh(attempts)
    if seam.fetched:
        attempts = list(in_view.all())
    changed = [a for a in attempts if version(a) != known[a.pk]]
    pending = any(a.status == Status.PENDING for a in attempts)
    seam_changed = seam.label != request.GET.get("seam", "")
    if not (changed or seam_changed or not pending):
        return HttpResponse()
    context = live_context(stuck_minutes)
    context |= {
        "changed": [row(a, context["stuck_before"], changed=True) for a in changed],
        "seam": seam if seam_changed else None,
        "stopped": not pending,
    }
    response = render(request, "attempts/_poll.html", context)
    if not pending:
        response.status_code = HttpResponseStopPolling.status_code
    return response


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def detail_context(attempt: Attempt) -> dict[str, Any]:
    return {
        "attempt": attempt,
        "error_json": pretty_json(attempt.error) if attempt.error is not None else "",
        "result_json": pretty_json(attempt.result) if attempt.result is not None else "",
        "live": attempt.status == Status.PENDING,
        "seam": live.seam_state(),
        "poll_seconds": settings.SEAM_POLL_SECONDS,
    }


def error_page(request: HttpRequest, status: int, title: str, reason: str) -> HttpResponse:
    context = {"title": title, "reason": reason}
    return render(request, "attempts/problem.html", context, status=status)


def track(request: HttpRequest, action_attempt_id: str) -> Attempt | HttpResponse:
    """Fetches an attempt never recorded from Seam, and records it from then on."""
    if not settings.SEAM_API_KEY:
        reason = "It is not recorded here, and no SEAM_API_KEY is set to look it up in Seam."
        return error_page(request, 404, "Attempt not found", reason)
    if live.backing_off():
        state = live.seam_state()
        reason = f"Seam is failing, so calls are paused for a while. {state.error}"
        return error_page(request, 503, "Seam is unavailable", reason)
    try:
        data = get_client().get(action_attempt_id)
    except SeamNotFound:
        return error_page(request, 404, "Attempt not found", "Seam has no attempt with this id.")
    except SeamError as e:
        live.failed(e)
        return error_page(request, 503, "Seam is unavailable", str(e))
    merged = merge_api_attempt(data)
    if merged is None:
        return error_page(request, 502, "Unexpected answer", "Seam's answer was not an attempt.")
    OperatorAction.objects.create(
        user=request.user,
        kind=OperatorAction.Kind.TRACK,
        action_attempt_id=merged.attempt.action_attempt_id,
        attempt=merged.attempt,
    )
    return merged.attempt


@login_required
@require_GET
def attempt_detail(request: HttpRequest, action_attempt_id: str) -> HttpResponse:
    attempt = Attempt.objects.filter(action_attempt_id=action_attempt_id).first()
    if attempt is None:
        tracked = track(request, action_attempt_id)
        if isinstance(tracked, HttpResponse):
            return tracked
        attempt = tracked
    elif live.needs_fetch(attempt) and live.refresh([attempt]).fetched:
        attempt.refresh_from_db()

    if is_partial(request, "detail"):
        # The page's poll: 204 while nothing changed, the new section otherwise.
        if str(version(attempt)) == request.GET.get("v") and attempt.status == Status.PENDING:
            response = HttpResponse(status=204)
        else:
            response = render(request, "attempts/_detail.html", detail_context(attempt))
            if attempt.status != Status.PENDING:
                response.status_code = HttpResponseStopPolling.status_code
    else:
        context = detail_context(attempt)
        context["history"] = attempt.history.order_by("at", "id")
        context["events"] = attempt.events.order_by("-received_at", "-id")[:50]
        response = render(request, "attempts/detail.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_POST
def attempt_track(request: HttpRequest) -> HttpResponse:
    action_attempt_id = request.POST.get("action_attempt_id", "").strip()
    if not action_attempt_id or len(action_attempt_id) > 255 or "/" in action_attempt_id:
        return error_page(
            request, 400, "Not an attempt id", "Paste an action attempt id (no slashes)."
        )
    if not Attempt.objects.filter(action_attempt_id=action_attempt_id).exists():
        tracked = track(request, action_attempt_id)
        if isinstance(tracked, HttpResponse):
            return tracked
        messages.success(request, "Tracking this attempt from now on.")
    return redirect("attempt-detail", action_attempt_id=action_attempt_id)


@login_required
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
    else:
        messages.success(request, "Refreshed from Seam.")
    return redirect("attempt-detail", action_attempt_id=action_attempt_id)
