"""CSV exports of the attempts and events lists: the same query and filters as the pages, every
page of it, streamed in chunks so a million rows never sit in memory.

Ids, types and error messages come from Seam and from webhook payloads, so they are untrusted:
a cell that starts with = + - @ (or a tab or carriage return) is prefixed with a single quote,
so that a spreadsheet app shows it as text instead of running it as a formula.
"""

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from attempts.event_views import EventFilterForm, filtered_events
from attempts.queries import AttemptFilterForm, filtered_attempts

CHUNK_SIZE = 2000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

ATTEMPT_COLUMNS = [
    "action_attempt_id",
    "action_type",
    "status",
    "first_seen_at",
    "ended_at",
    "seconds_to_resolution",
    "error_type",
    "error_message",
    "result",
    "workspace_id",
]
EVENT_COLUMNS = [
    "event_id",
    "event_type",
    "action_attempt_id",
    "known_type",
    "occurred_at",
    "received_at",
    "svix_id",
    "payload",
]


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if not isinstance(value, str):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


class Echo:
    """A file-like object whose write() hands back the line, for csv.writer to stream."""

    def write(self, value: str) -> str:
        return value


def stream(header: list[str], rows: Iterable[list[Any]]) -> Iterator[str]:
    writer = csv.writer(Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([cell(v) for v in row])


def csv_response(name: str, lines: Iterator[str]) -> StreamingHttpResponse:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response


def bad_filters(form: Any) -> HttpResponse:
    reasons = "; ".join(
        f"{field}: {' '.join(errors)}" if field != "__all__" else " ".join(errors)
        for field, errors in form.errors.items()
    )
    return HttpResponseBadRequest(
        f"Invalid filters: {reasons}\n", content_type="text/plain; charset=utf-8"
    )


def attempt_rows(qs) -> Iterator[list[Any]]:
    fields = ("action_attempt_id", "action_type", "status", "first_seen_at", "ended_at")
    values = qs.values_list(*fields, "error", "result", "workspace_id")
    for aid, atype, status, first_seen, ended, error, result, workspace in values.iterator(
        chunk_size=CHUNK_SIZE
    ):
        seconds = round((ended - first_seen).total_seconds(), 3) if ended else None
        error = error if isinstance(error, dict) else {}
        yield [
            aid,
            atype,
            status,
            first_seen,
            ended,
            "" if seconds is None else f"{seconds:.3f}",
            error.get("type"),
            error.get("message"),
            result,
            workspace,
        ]


def event_rows(qs) -> Iterator[list[Any]]:
    fields = ("event_id", "event_type", "attempt__action_attempt_id", "known_type")
    values = qs.values_list(*fields, "occurred_at", "received_at", "svix_id", "payload")
    for event_id, etype, aid, known, occurred, received, svix_id, payload in values.iterator(
        chunk_size=CHUNK_SIZE
    ):
        if (
            not aid
            and isinstance(payload, dict)
            and isinstance(payload.get("action_attempt_id"), str)
        ):
            aid = payload["action_attempt_id"]
        yield [event_id, etype, aid, known, occurred, received, svix_id, payload]


@require_GET
@login_required
def attempts_csv(request: HttpRequest) -> HttpResponse:
    form = AttemptFilterForm(request.GET)
    if not form.is_valid():
        return bad_filters(form)
    qs = filtered_attempts(form.filters())
    return csv_response("attempts", stream(ATTEMPT_COLUMNS, attempt_rows(qs)))


@require_GET
@login_required
def events_csv(request: HttpRequest) -> HttpResponse:
    form = EventFilterForm(request.GET)
    if not form.is_valid():
        return bad_filters(form)
    qs = filtered_events(form.filters())
    return csv_response("events", stream(EVENT_COLUMNS, event_rows(qs)))
