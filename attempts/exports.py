"""CSV exports of the attempts and events lists: the same query and filters as the pages, every
page of it, streamed in chunks so a million rows never sit in memory.

Ids, types and error messages come from Seam and from webhook payloads, so they are untrusted:
a cell that starts with = + - @ (or a tab or carriage return) is prefixed with a single quote,
so that a spreadsheet app shows it as text instead of running it as a formula.
"""

import csv
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import F, QuerySet, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
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
    if type(value) is str:
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return cell(str(value))


class Echo:
    """A file-like object whose write() hands back the line, for csv.writer to stream."""

    def write(self, value: str) -> str:
        return value


def safe(text: str | None) -> str:
    """cell() of a text that may be None, for the columns known to hold text."""
    if not text:
        return ""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def stream(header: list[str], rows: Iterable[Iterable[str]]) -> Iterator[str]:
    """CSV text in chunks of CHUNK_SIZE rows (of cells): one write to the client per chunk."""
    writer = csv.writer(Echo())
    lines = [writer.writerow(header)]
    for row in rows:
        lines.append(writer.writerow(row))
        if len(lines) >= CHUNK_SIZE:
            yield "".join(lines)
            lines = []
    yield "".join(lines)


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


def as_text(name: Any) -> Cast:
    # The JSON as the database holds it: no decoding and re-encoding in Python for each row.
    return Cast(name, TextField())


def attempt_rows(qs: QuerySet) -> Iterator[tuple[str, ...]]:
    # On SQLite the times are read as the text it stores (naive UTC): parsing each into an
    # aware datetime and formatting it again took two fifths of an export.
    as_stored = connection.vendor == "sqlite"
    times = [as_text(f) if as_stored else F(f) for f in ("first_seen_at", "ended_at")]
    values = qs.values_list(
        "action_attempt_id",
        "action_type",
        "status",
        *times,
        "error_type",
        as_text(KT("error__message")),  # SQLite reads a JSON number as a number
        as_text("result"),
        "workspace_id",
    )
    iso, parse = (stored_iso, datetime.fromisoformat) if as_stored else (aware_iso, same)
    for (
        aid,
        action_type,
        status,
        first_seen,
        ended,
        error_type,
        message,
        result,
        workspace,
    ) in values.iterator(chunk_size=CHUNK_SIZE):
        seconds = f"{(parse(ended) - parse(first_seen)).total_seconds():.3f}" if ended else ""
        yield (
            safe(aid),
            safe(action_type),
            status,
            iso(first_seen),
            iso(ended),
            seconds,
            safe(error_type),
            safe(message),
            safe(result),
            safe(workspace),
        )


def stored_iso(text: str | None) -> str:
    return f"{text[:10]}T{text[11:]}+00:00" if text else ""


def aware_iso(at: datetime | None) -> str:
    return at.isoformat() if at else ""


def same(value: Any) -> Any:
    return value


def event_rows(qs: QuerySet) -> Iterator[tuple[Any, ...]]:
    values = qs.values_list(
        "event_id",
        "event_type",
        "attempt__action_attempt_id",
        KT("payload__action_attempt_id"),
        "known_type",
        "occurred_at",
        "received_at",
        "svix_id",
        as_text("payload"),
    )
    for event_id, event_type, linked, named, *rest in values.iterator(chunk_size=CHUNK_SIZE):
        # The attempt it was merged into, else the one its payload names (lock.locked does).
        yield [cell(v) for v in (event_id, event_type, linked or named, *rest)]


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
