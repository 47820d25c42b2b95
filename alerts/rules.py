"""What each kind of rule finds now: one Finding per scope where its condition holds.

Each query reads a narrow index range: the attempts that ended in the window (attempt_ended_idx),
the pending ones first seen before a time (attempt_status_newest_idx), the events received in the
window (event_newest_idx). None counts the whole table.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.db.models import Count

from alerts.models import Kind, Rule
from attempts.models import Attempt, Status, WebhookEvent
from seam.live import seam_state


@dataclass(frozen=True)
class Finding:
    scope: str
    figure: float
    threshold: float
    summary: str
    link: str


def _last(minutes: int) -> str:
    """The list's smallest `last=` choice that covers a window."""
    for choice, limit in (("1h", 60), ("24h", 24 * 60), ("7d", 7 * 24 * 60)):
        if minutes <= limit:
            return choice
    return "30d"


def _list_link(path: str, **params: str | int) -> str:
    return f"{path}?{urlencode({k: v for k, v in params.items() if v})}"


def _ended(rule: Rule, now: datetime):
    qs = Attempt.objects.filter(
        ended_at__gte=now - timedelta(minutes=rule.window_minutes), ended_at__lte=now
    )
    if rule.action_type:
        qs = qs.filter(action_type=rule.action_type)
    return qs


def error_rate(rule: Rule, now: datetime) -> list[Finding]:
    ended: dict[str, int] = {}
    errors: dict[str, int] = {}
    rows = _ended(rule, now).values_list("action_type", "status").annotate(n=Count("*"))
    for action_type, status, n in rows.order_by():
        ended[action_type] = ended.get(action_type, 0) + n
        if status == Status.ERROR:
            errors[action_type] = errors.get(action_type, 0) + n
    limit = rule.limit()
    findings = []
    for action_type, total in sorted(ended.items()):
        failed = errors.get(action_type, 0)
        percent = 100 * failed / total
        if total >= rule.min_ended and percent >= limit:
            findings.append(
                Finding(
                    scope=action_type,
                    figure=round(percent, 1),
                    threshold=limit,
                    summary=(
                        f"{failed} of {total} {action_type or '(no type)'} attempts ended in"
                        f" error in the last {rule.window_minutes} min: {percent:.1f}%"
                        f" (threshold {limit:g}%)"
                    ),
                    link=_list_link(
                        "/attempts/",
                        action_type=action_type,
                        status=Status.ERROR,
                        last=_last(rule.window_minutes),
                    ),
                )
            )
    return findings


def error_type(rule: Rule, now: datetime) -> list[Finding]:
    wanted = rule.error_type_list
    rows = (
        _ended(rule, now)
        .filter(status=Status.ERROR, error_type__in=wanted)
        .values_list("error_type")
        .annotate(n=Count("*"))
        .order_by()
    )
    limit = rule.limit()
    scope = f" {rule.action_type}" if rule.action_type else ""
    return [
        Finding(
            scope=kind,
            figure=n,
            threshold=limit,
            summary=(
                f"{n}{scope} attempts ended with {kind} in the last {rule.window_minutes} min"
                f" (threshold {limit:g})"
            ),
            link=_list_link(
                "/attempts/",
                action_type=rule.action_type,
                status=Status.ERROR,
                last=_last(rule.window_minutes),
            ),
        )
        for kind, n in sorted(rows)
        if n >= limit
    ]


def stuck(rule: Rule, now: datetime) -> list[Finding]:
    # Those Seam no longer has are not waiting on anything: not stuck.
    qs = Attempt.objects.filter(
        status=Status.PENDING,
        first_seen_at__lt=now - timedelta(minutes=rule.minutes),
        not_found_at__isnull=True,
    )
    if rule.action_type:
        qs = qs.filter(action_type=rule.action_type)
    n = qs.count()
    limit = rule.limit()
    if n < limit:
        return []
    what = f"{rule.action_type} attempts" if rule.action_type else "attempts"
    return [
        Finding(
            scope=rule.action_type,
            figure=n,
            threshold=limit,
            summary=f"{n} {what} pending longer than {rule.minutes} min (threshold {limit:g})",
            link=_list_link(
                "/attempts/",
                action_type=rule.action_type,
                status=Status.PENDING,
                stuck_minutes=rule.minutes,
            ),
        )
    ]


def webhooks_missed(rule: Rule, now: datetime) -> list[Finding]:
    # The catch-up records events from /events/list without a Svix id; the webhook always has one.
    n = WebhookEvent.objects.filter(
        received_at__gte=now - timedelta(minutes=rule.window_minutes),
        received_at__lte=now,
        svix_id="",
        event_type__startswith="action_attempt.",
    ).count()
    limit = rule.limit()
    if n < limit:
        return []
    return [
        Finding(
            scope="",
            figure=n,
            threshold=limit,
            summary=(
                f"{n} action attempt events in the last {rule.window_minutes} min came from"
                f" Seam's event list, never from the webhook (threshold {limit:g}): check the"
                " webhook endpoint and SEAM_WEBHOOK_SECRET"
            ),
            link="/events/",
        )
    ]


def seam_unreachable(rule: Rule, now: datetime) -> list[Finding]:
    since = seam_state().stale_since
    if since is None or now - since < timedelta(minutes=rule.minutes):
        return []
    minutes = (now - since).total_seconds() / 60
    return [
        Finding(
            scope="",
            figure=round(minutes, 1),
            threshold=rule.minutes,
            summary=(
                f"Calls to Seam have failed for {minutes:.0f} min, since"
                f" {since:%Y-%m-%d %H:%M} UTC (threshold {rule.minutes} min)"
            ),
            link="/attempts/",
        )
    ]


FIND: dict[str, Callable[[Rule, datetime], list[Finding]]] = {
    Kind.ERROR_RATE: error_rate,
    Kind.ERROR_TYPE: error_type,
    Kind.STUCK: stuck,
    Kind.WEBHOOKS_MISSED: webhooks_missed,
    Kind.SEAM_UNREACHABLE: seam_unreachable,
}


def findings(rule: Rule, now: datetime) -> dict[str, Finding]:
    return {f.scope: f for f in FIND[rule.kind](rule, now)}
