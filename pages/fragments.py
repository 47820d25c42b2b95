"""The list's rows and counts as HTML, kept per process: they change far less often than viewed."""

from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from django.http import QueryDict
from django.template.loader import get_template, render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator

from attempts.models import Attempt, Status
from attempts.paging import Cursor
from pages.templatetags.attempt_tags import duration, error_message, error_type, version

# What reverse() leaves unquoted in a path argument.
URL_SAFE = "!$&'()*+,;=~:@"


@lru_cache(maxsize=1)
def detail_url_prefix() -> str:
    return reverse("attempt-detail", args=["0"]).removesuffix("0/")


def is_stuck(attempt: Attempt, stuck_before: datetime) -> bool:
    """Pending since before the threshold, and still on Seam (else nothing is left to wait for)."""
    return (
        attempt.status == Status.PENDING
        and attempt.first_seen_at < stuck_before
        and not attempt.not_found
    )


def row(attempt: Attempt, stuck_before: datetime, changed: bool = False) -> dict[str, Any]:
    """What `_row.html` shows of an attempt, worked out here: a template reads a dict several
    times faster than it looks up attributes of a model instance."""
    error = attempt.error
    # Numbers as text: a template would localize each one, a surprisingly slow step.
    return {
        "pk": str(attempt.pk),
        # Where the row stands in the list: a live page that drops rows off its bottom points
        # its next-page link here.
        "cursor": Cursor.of(attempt, "first_seen_at").encode(),
        "id": attempt.action_attempt_id,
        "url": f"{detail_url_prefix()}{quote(attempt.action_attempt_id, safe=URL_SAFE)}/",
        "action_type": attempt.action_type,
        "status": attempt.status,
        "stuck": is_stuck(attempt, stuck_before),
        "not_found_since": (
            timezone.localtime(attempt.not_found_at).strftime("%Y-%m-%d %H:%M:%S")
            if attempt.not_found
            else ""
        ),
        "changed": changed,
        "version": str(version(attempt)),
        "first_seen": timezone.localtime(attempt.first_seen_at).strftime("%Y-%m-%d %H:%M:%S"),
        "took": duration(attempt.time_to_resolution),
        "has_error": error is not None,
        "error_type": error_type(error),
        "error_message": Truncator(error_message(error)).chars(120),
        "unfetched": attempt.status == Status.ERROR and not attempt.payload_fetched,
    }


# Rendered rows, by attempt version, stuck or not, threshold, and whether a poll sends it as a
# change: a row's HTML changes only when its attempt does (or turns stuck), so each process
# renders it once per change, not once per view or per poll of every viewer.
_row_fragments: dict[tuple[int, int, bool, int, bool], str] = {}
ROW_FRAGMENTS = 5000


def rows_html(
    attempts: list[Attempt], stuck_before: datetime, stuck_minutes: int, changed: bool = False
) -> list[str]:
    """The rows as the list shows them, or (changed) as a poll sends them to replace theirs."""
    template = get_template("attempts/_row.html")
    out = []
    for attempt in attempts:
        stuck = is_stuck(attempt, stuck_before)
        key = (attempt.pk, version(attempt), stuck, stuck_minutes, changed)
        html = _row_fragments.get(key)
        if html is None:
            if len(_row_fragments) >= ROW_FRAGMENTS:
                _row_fragments.clear()
            context = {
                "row": row(attempt, stuck_before, changed=changed),
                "stuck_minutes": stuck_minutes,
                "oob": changed,
            }
            html = _row_fragments[key] = template.render(context)
        out.append(html)
    return out


BAR_WIDTH = 200


def bars(types: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each action type's counts with its bar: success, error and pending segments, scaled to
    the widest type, and their wording."""
    widest = max((row["total"] for row in types), default=0) or 1
    out = []
    for row in types:
        x = 0.0
        segments = []
        for status in (Status.SUCCESS, Status.ERROR, Status.PENDING):
            width = BAR_WIDTH * row[status] / widest
            if width:
                # As text: the template would otherwise localize every number, slowly.
                segments.append({"status": str(status), "x": f"{x:.1f}", "width": f"{width:.1f}"})
            x += width
        success, error, pending = row["success"], row["error"], row["pending"]
        text = {
            "total": str(row["total"]),
            "summary": f"{success} success, {error} error, {pending} pending",
            "legend": f"{error} err · {pending} pend",
        }
        out.append({**row, "segments": segments, "text": text})
    return out


# The counts as HTML, by computation and query string: they change once per interval, so each
# process renders them once per interval rather than once per view.
_stats_fragments: dict[tuple[Any, ...], str] = {}


def stats_version(stats: dict[str, Any]) -> str:
    """Which computation of the counts a page shows: a poll sends newer ones only."""
    return str(stats.get("computed_at", ""))


def stats_fragment(
    page_query: QueryDict, stats_key: str, stats: dict[str, Any], oob: bool = False
) -> str:
    """The counts for a page's query (its links keep its filters, not its position)."""
    query = page_query.copy()
    for position in ("after", "before"):
        query.pop(position, None)
    key = (stats_key, stats_version(stats), query.urlencode(), oob)
    html = _stats_fragments.get(key)
    if html is None:
        if len(_stats_fragments) >= 256:
            _stats_fragments.clear()
        context = {
            "stats": {**stats, "types": bars(stats["types"])},
            "query": query,
            "version": stats_version(stats),
            "oob": oob,
        }
        html = render_to_string("attempts/_stats.html", context)
        _stats_fragments[key] = html
    return html
