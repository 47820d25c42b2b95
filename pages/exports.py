"""CSV exports of the attempts and events lists: the same query and filters as the pages, every
page of it, streamed in chunks so a million rows never sit in memory.

Ids, types and error messages come from Seam and from webhook payloads, so they are untrusted:
a cell that starts with = + - @ (or a tab or carriage return) is prefixed with a single quote,
so that a spreadsheet app shows it as text instead of running it as a formula.
"""

import csv
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import F, Func, QuerySet, TextField, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, NullIf
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.access import login_required
from attempts.events import EventFilterForm, filtered_events
from attempts.filters import AttemptFilterForm, filtered_attempts
from dashboard import streams
from dashboard.web import form_errors

CHUNK_SIZE = 2000
EXPORT_RETRY_SECONDS = 60
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NEEDS_QUOTES = re.compile('["\r\n]')

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
    "workspace_id",
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
        # Cells without a comma, quote or line break are written as they are, joined by commas:
        # csv.writer is left the others, as running every row through it took a third of the
        # export on SQLite.
        line = ",".join(row)
        if line.count(",") == len(row) - 1 and not NEEDS_QUOTES.search(line):
            lines.append(line + "\r\n")
        else:
            lines.append(writer.writerow(row))
        if len(lines) >= CHUNK_SIZE:
            yield "".join(lines)
            lines = []
    yield "".join(lines)


def csv_response(name: str, lines: Iterator[str]) -> HttpResponse:
    """The CSV streamed, holding one of the instance's export slots until it ends; a 503 that
    says why when every slot is taken (one worker stays free for webhooks and pages)."""
    try:
        slot = streams.take_slot()
    except streams.AllSlotsBusy as busy:
        return HttpResponse(
            f"Not now: {busy}, as many as this server streams at once (one worker stays free "
            "for webhooks and pages). Try again in a minute.\n",
            status=503,
            content_type="text/plain; charset=utf-8",
            headers={"Retry-After": str(EXPORT_RETRY_SECONDS)},
        )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(
        streams.Holding(slot, lines), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response


def bad_filters(form: Any) -> HttpResponse:
    return HttpResponseBadRequest(
        f"Invalid filters: {form_errors(form)}\n", content_type="text/plain; charset=utf-8"
    )


def as_text(name: Any) -> Cast:
    # The JSON as the database holds it: no decoding and re-encoding in Python for each row.
    return Cast(name, TextField())


def attempt_rows(qs: QuerySet) -> Iterator[tuple[str, ...]]:
    """The attempts' cells on SQLite, formatted in Python. The times are read as the text SQLite
    stores (naive UTC): parsing each into an aware datetime and formatting it again took two
    fifths of an export."""
    values = qs.values_list(
        "action_attempt_id",
        "action_type",
        "status",
        as_text("first_seen_at"),
        as_text("ended_at"),
        "error_type",
        as_text(KT("error__message")),  # SQLite reads a JSON number as a number
        as_text("result"),
        "workspace_id",
    )
    parse = datetime.fromisoformat
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
            stored_iso(first_seen),
            stored_iso(ended),
            seconds,
            safe(error_type),
            safe(message),
            safe(result),
            safe(workspace),
        )


def stored_iso(text: str | None) -> str:
    return f"{text[:10]}T{text[11:]}+00:00" if text else ""


# The cells of attempt_rows() in PostgreSQL's SQL. Each names its column once, as a column's SQL
# may carry a parameter (KT's key). An empty text becomes NULL: COPY writes a NULL as nothing,
# as csv.writer writes "", and an empty text as "".
def pg_sql(template: str, *expressions: Any, joiner: str = ", ") -> Func:
    return Func(*expressions, template=template, arg_joiner=joiner, output_field=TextField())


def pg_safe(column: Any) -> Func:
    # The empty match before a formula's first character becomes a quote.
    return pg_sql(r"NULLIF(regexp_replace(%(expressions)s, '^(?=[-=+@\t\r])', ''''), '')", column)


def pg_iso(name: str) -> Func:
    # As isoformat(): no fraction when the microseconds are 0.
    pattern = """'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'"""
    template = f"replace(to_char(%(expressions)s AT TIME ZONE 'UTC', {pattern}), '.000000+', '+')"
    return pg_sql(template, F(name))


def pg_seconds() -> Func:
    # A float8 as total_seconds() gives: to_char() prints it with the C library's printf, which
    # rounds the same binary value to 3 decimals as Python's format() does.
    template = "to_char(extract(epoch FROM %(expressions)s)::float8, 'FM999999999990.000')"
    return pg_sql(template, F("ended_at"), F("first_seen_at"), joiner=" - ")


def copied_attempts(qs: QuerySet) -> Iterator[bytes]:
    """The attempts' CSV on PostgreSQL, written by the database (COPY ... TO STDOUT): the bytes
    attempt_rows() and csv.writer would write, without Python's work on each cell."""
    values = qs.values_list(
        pg_safe("action_attempt_id"),
        pg_safe("action_type"),
        NullIf("status", Value("")),
        pg_iso("first_seen_at"),
        pg_iso("ended_at"),
        pg_seconds(),
        pg_safe("error_type"),
        pg_safe(KT("error__message")),
        pg_safe(as_text("result")),
        pg_safe("workspace_id"),
    )
    lines = [",".join(ATTEMPT_COLUMNS).encode()]
    try:
        query, params = values.query.sql_with_params()
    except EmptyResultSet:  # filters that Django finds can match nothing (an id search's)
        yield lines[0] + b"\r\n"
        return
    # COPY takes no parameters: psycopg binds them client-side, as Django does for every query.
    query = connection.ops.compose_sql(query, params)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
            # One row per read, ended by \n, where csv.writer ends a row with \r\n.
            for row in copy:
                lines.append(row[:-1])
                if len(lines) >= CHUNK_SIZE:
                    yield b"\r\n".join(lines) + b"\r\n"
                    lines = []
    if lines:
        yield b"\r\n".join(lines) + b"\r\n"


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
        "workspace_id",
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
    if connection.vendor == "postgresql":
        return csv_response("attempts", copied_attempts(qs))
    return csv_response("attempts", stream(ATTEMPT_COLUMNS, attempt_rows(qs)))


@require_GET
@login_required
def events_csv(request: HttpRequest) -> HttpResponse:
    form = EventFilterForm(request.GET)
    if not form.is_valid():
        return bad_filters(form)
    qs = filtered_events(form.filters())
    return csv_response("events", stream(EVENT_COLUMNS, event_rows(qs)))
