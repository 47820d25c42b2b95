import json
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django import forms
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
from attempts.fragments import rows_html, stats_fragment, stats_version
from attempts.models import Attempt, OperatorAction
from attempts.queries import (
    PAGE_SIZE,
    AttemptFilterForm,
    attempt_stats,
    list_page,
    newest_pk,
    recorded_since,
    stats_key,
)
from attempts.seam import SeamError, SeamNotFound
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


def form_errors(form: forms.Form) -> str:
    """A form's errors as one readable line, for a 400 that is not a page."""
    return "; ".join(
        f"{name}: {error}" if name != "__all__" else error
        for name, errors in form.errors.items()
        for error in errors
    )


@login_required
@require_GET
def attempt_list(request: HttpRequest) -> HttpResponse:
    form = AttemptFilterForm(request.GET)
    minutes = form.threshold_minutes()
    context: dict[str, Any] = {"form": form, "picked": form.picked(), **live_context(minutes)}
    status = 200
    if form.is_valid():
        filters = form.filters()
        # Before the page's query: an attempt recorded in between comes twice, never not at all.
        newest = newest_pk()
        page = list_page(filters, form.cleaned_data["after"], form.cleaned_data["before"])
        seam = live.seam_state()
        stats = attempt_stats(filters, minutes)
        context |= {
            "page": page,
            "page_size": PAGE_SIZE,
            "page_position": bool(form.cleaned_data["after"] or form.cleaned_data["before"]),
            "page_query": request.GET.urlencode(),
            "newest": newest,
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


def parse_versions(values: list[str]) -> dict[int, int]:
    """The rows a page shows, as `<pk>.<version>` pairs, to {pk: version}."""
    if len(values) > 2 * PAGE_SIZE:
        raise ValueError(f"At most {2 * PAGE_SIZE} v=<id>.<version> pairs.")
    known = {}
    for value in values:
        pk, _, v = value.partition(".")
        try:
            known[int(pk)] = int(v)
        except ValueError:
            raise ValueError(f"Not a v=<id>.<version> pair: {value[:40]!r}.") from None
    return known


def parse_newest(value: str | None) -> int | None:
    """The newest attempt the page has seen (its primary key), if it says."""
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise ValueError("newest must be the whole number of the newest attempt seen.")
    return int(value)


@login_required
@require_GET
@never_cache
def attempt_poll(request: HttpRequest) -> HttpResponse:
    """A live list's poll, one request per page: the rows in view that changed since the page
    saw them (refreshed from Seam first, at most once per interval for every viewer), the
    attempts matching the page's query recorded since its newest one, and newer counts.

    A hidden tab (hidden=1) asks Seam for nothing on its own behalf and skips the counts."""
    form = AttemptFilterForm(request.GET)
    try:
        known = parse_versions(request.GET.getlist("v"))
        newest = parse_newest(request.GET.get("newest"))
    except ValueError as e:
        return HttpResponseBadRequest(str(e))
    if not form.is_valid():
        return HttpResponseBadRequest(form_errors(form))
    hidden = request.GET.get("hidden") == "1"
    filters, minutes = form.filters(), form.threshold_minutes()

    # What the refresh and the versions need, for every row in view; whole rows for the changed.
    in_view = Attempt.objects.filter(pk__in=known).only(*live.REFRESH_FIELDS, "updated_at")
    attempts = list(in_view)
    seam = live.seam_state() if hidden else live.refresh(attempts)
    if seam.fetched:
        attempts = list(in_view.all())
    changed_pks = [a.pk for a in attempts if version(a) != known[a.pk]]
    changed = (
        list(Attempt.objects.filter(pk__in=changed_pks).defer("result")) if changed_pks else []
    )
    context = live_context(minutes)
    new_rows: list[str] = []
    new_count, after = 0, None
    if newest is not None:
        recorded, new_count, after = recorded_since(filters, newest)
        new_rows = rows_html(recorded, context["stuck_before"], minutes)
    stats_html = ""
    if not hidden:
        stats = attempt_stats(filters, minutes)
        if stats_version(stats) != request.GET.get("stats", ""):
            stats_html = stats_fragment(request.GET, stats_key(filters, minutes), stats, oob=True)
    seam_changed = seam.label != request.GET.get("seam", "")
    if not (changed or new_rows or seam_changed or stats_html or (after and after != newest)):
        return HttpResponse()
    context |= {
        "changed": rows_html(changed, context["stuck_before"], minutes, changed=True),
        "new_rows": new_rows,
        "new_count": new_count,
        "newest": after if after != newest else None,
        "seam": seam if seam_changed else None,
        "stats_html": stats_html,
    }
    return render(request, "attempts/_poll.html", context)


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


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


def track(request: HttpRequest, action_attempt_id: str) -> Attempt | HttpResponse:
    """Fetches an attempt never recorded from Seam, and records it from then on."""
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
