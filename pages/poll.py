"""What a live list's poll sends back: the rows in view that changed since the page saw them
(refreshed from Seam first, at most once per interval for every viewer), the attempts matching
the page's query recorded since its position (attempts/recorded.py), newer counts, and Seam's
state if it changed."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import QueryDict
from django.utils import timezone

from attempts.counts import attempt_stats, stats_key
from attempts.models import Attempt
from attempts.paging import PAGE_SIZE
from attempts.recorded import Since, recorded_since
from pages.fragments import rows_html, stats_fragment, stats_version
from pages.templatetags.attempt_tags import version
from seam import live


def live_context(stuck_minutes: int) -> dict[str, Any]:
    """What a live page and its polls need to tell pending from stuck, and how often to ask."""
    return {
        "poll_seconds": settings.SEAM_POLL_SECONDS,
        "stuck_minutes": stuck_minutes,
        "stuck_before": timezone.now() - timedelta(minutes=stuck_minutes),
    }


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


def changed_in_view(known: dict[int, int], hidden: bool) -> tuple[list[Attempt], live.SeamState]:
    """The attempts in view whose version differs from the page's, after a refresh from Seam
    (none for a hidden tab)."""
    # What the refresh and the versions need, for every row in view; whole rows for the changed.
    in_view = Attempt.objects.filter(pk__in=known).only(*live.REFRESH_FIELDS, "updated_at")
    attempts = list(in_view)
    seam = live.seam_state() if hidden else live.refresh(attempts)
    if seam.fetched:
        attempts = list(in_view.all())
    changed_pks = [a.pk for a in attempts if version(a) != known[a.pk]]
    if not changed_pks:
        return [], seam
    return list(Attempt.objects.filter(pk__in=changed_pks).defer("result")), seam


def changes(
    filters: dict[str, Any],
    minutes: int,
    known: dict[int, int],
    since: Since | None,
    shown: QueryDict,
    hidden: bool,
) -> dict[str, Any] | None:
    """The poll's answer as the context of attempts/_poll.html; None when nothing changed.
    `shown` is the poll's query: the page's filters, and the counts and Seam state it shows."""
    changed, seam = changed_in_view(known, hidden)
    context = live_context(minutes)
    new_rows: list[str] = []
    new_count, after = 0, since
    if since is not None:
        recorded, new_count, after = recorded_since(filters, since)
        new_rows = rows_html(recorded, context["stuck_before"], minutes)
    stats_html = ""
    if not hidden:
        stats = attempt_stats(filters, minutes)
        if stats_version(stats) != shown.get("stats", ""):
            stats_html = stats_fragment(shown, stats_key(filters, minutes), stats, oob=True)
    seam_changed = seam.label != shown.get("seam", "")
    if not (changed or new_rows or seam_changed or stats_html or after != since):
        return None
    return context | {
        "changed": rows_html(changed, context["stuck_before"], minutes, changed=True),
        "new_rows": new_rows,
        "new_count": new_count,
        # The page's new position, when it moved.
        "since": after if after != since else None,
        "seam": seam if seam_changed else None,
        "stats_html": stats_html,
    }
