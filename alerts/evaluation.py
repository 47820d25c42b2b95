"""The one place that decides when an incident opens and resolves, and which notices are due.

An evaluation runs every enabled rule once. Where a rule's condition holds for a scope with no
open incident, one opens; while it holds, the incident takes the latest figure; the first
evaluation where it no longer holds resolves it. Each change and the notices it makes (one per
destination) are committed together; notices are sent afterwards, and whatever a destination did
not take stays pending for the next evaluation, up to NOTICE_TRIES tries.

One evaluation runs at a time across processes and instances (`exclusive()`), and every state
lives in the database: a second evaluation started meanwhile skips, and a restart resends
nothing that was marked sent. A crash between a destination taking a notice and its row being
marked sent is the one case where a notice can go twice.
"""

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from alerts import destinations
from alerts.models import Incident, Notice, Rule
from alerts.rules import Finding, findings
from dashboard import locks

log = logging.getLogger(__name__)

# Evaluations run once a minute: a destination down for an hour still gets its notices.
NOTICE_TRIES = 60
# Any fixed number: the key of the PostgreSQL advisory lock that one evaluation holds.
ADVISORY_LOCK_KEY = 0x5EA7A1E7


@dataclass
class Outcome:
    skipped: bool = False
    opened: int = 0
    updated: int = 0
    resolved: int = 0
    sent: int = 0
    failed: int = 0
    gave_up: int = 0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.skipped:
            return "check_alerts outcome=skipped reason=another_evaluation_running"
        counts = " ".join(
            f"{name}={getattr(self, name)}"
            for name in ("opened", "updated", "resolved", "sent", "failed", "gave_up")
        )
        return f"check_alerts outcome={'error' if self.errors else 'ok'} {counts}"


def exclusive() -> AbstractContextManager[bool]:
    """Yields True to the one evaluation that may run now, False to any other meanwhile."""
    return locks.exclusive("alerts", ADVISORY_LOCK_KEY)


def evaluate(now: datetime | None = None) -> Outcome:
    """Runs every enabled rule once and sends the notices due, unless another evaluation runs."""
    outcome = Outcome()
    with exclusive() as got:
        if not got:
            outcome.skipped = True
            return outcome
        now = now or timezone.now()
        for rule in Rule.objects.all():
            try:
                found = findings(rule, now) if rule.enabled else {}
            except DatabaseError as e:
                # Its incidents stay as they are until a query answers again.
                log.error("check_alerts rule=%r outcome=error reason=%r", rule.name, str(e))
                outcome.errors.append(rule.name)
                continue
            apply(rule, found, now, outcome)
        send_due(now, outcome)
    return outcome


def apply(rule: Rule, found: dict[str, Finding], now: datetime, outcome: Outcome) -> None:
    with transaction.atomic():
        open_now = {i.scope: i for i in rule.incidents.filter(resolved_at__isnull=True)}
        for scope, finding in found.items():
            incident = open_now.get(scope)
            figures = _figures(finding)
            if incident is None:
                incident = Incident.objects.create(
                    rule=rule, scope=scope, opened_at=now, updated_at=now, **figures
                )
                _notices(incident, Notice.Event.FIRING)
                outcome.opened += 1
                log.info("check_alerts rule=%r scope=%r incident=opened", rule.name, scope)
            else:
                for name, value in figures.items():
                    setattr(incident, name, value)
                incident.updated_at = now
                incident.save(update_fields=[*figures, "updated_at"])
                outcome.updated += 1
        for scope, incident in open_now.items():
            if scope not in found:
                incident.resolved_at = incident.updated_at = now
                incident.save(update_fields=["resolved_at", "updated_at"])
                _notices(incident, Notice.Event.RESOLVED)
                outcome.resolved += 1
                log.info("check_alerts rule=%r scope=%r incident=resolved", rule.name, scope)


def _figures(finding: Finding) -> dict:
    return {
        "figure": finding.figure,
        "threshold": finding.threshold,
        "summary": finding.summary[:300],
        "link": finding.link[:500],
    }


def _notices(incident: Incident, event: str) -> None:
    Notice.objects.bulk_create(
        [
            Notice(incident=incident, destination=d.key, label=d.label, event=event)
            for d in destinations.configured()
        ]
    )


def send_due(now: datetime, outcome: Outcome) -> None:
    """Sends pending notices oldest first; a destination that fails is not tried again in this
    evaluation, so its notices keep their order and one dead destination costs one timeout."""
    targets = {d.key: d for d in destinations.configured()}
    down: set[str] = set()
    pending = Notice.objects.filter(state=Notice.State.PENDING).select_related(
        "incident__rule", "incident__acknowledged_by"
    )
    for notice in pending.order_by("created_at", "id"):
        destination = targets.get(notice.destination)
        if destination is None:
            _give_up(notice, "no longer in ALERT_URLS", outcome)
            continue
        if notice.destination in down:
            continue
        title, body = message(notice)
        if destinations.send(destination, title, body):
            Notice.objects.filter(pk=notice.pk).update(
                state=Notice.State.SENT, sent_at=timezone.now(), tries=F("tries") + 1
            )
            outcome.sent += 1
            continue
        down.add(notice.destination)
        notice.tries += 1
        if notice.tries >= NOTICE_TRIES:
            _give_up(notice, f"not taken after {notice.tries} tries", outcome)
            continue
        Notice.objects.filter(pk=notice.pk).update(tries=notice.tries, last_error="not taken")
        outcome.failed += 1
        log.warning(
            "check_alerts notice=%d event=%s destination=%s outcome=failed tries=%d",
            notice.pk,
            notice.event,
            notice.label,
            notice.tries,
        )


def _give_up(notice: Notice, reason: str, outcome: Outcome) -> None:
    Notice.objects.filter(pk=notice.pk).update(
        state=Notice.State.GAVE_UP, tries=notice.tries, last_error=reason[:200]
    )
    outcome.gave_up += 1
    log.error(
        "check_alerts notice=%d event=%s destination=%s outcome=gave_up reason=%r",
        notice.pk,
        notice.event,
        notice.label,
        reason,
    )


def absolute(link: str) -> str:
    return f"{settings.DASHBOARD_URL}{link}" if settings.DASHBOARD_URL else link


def scope_label(incident: Incident) -> str:
    return incident.scope or incident.rule.action_type or "all attempts"


def message(notice: Notice) -> tuple[str, str]:
    """The title and body of a notice: which rule, the scope, the figure against its threshold,
    since when, and the link to the matching list."""
    incident = notice.incident
    rule = incident.rule
    resolved = notice.event == Notice.Event.RESOLVED
    title = f"[{'RESOLVED' if resolved else 'FIRING'}] {rule.name}: {scope_label(incident)}"
    lines = [
        f"Rule: {rule.name} ({rule.get_kind_display()})",
        f"Scope: {scope_label(incident)}",
        f"{'Last figure' if resolved else 'Figure'}: {incident.summary}",
        f"Since: {incident.opened_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    if resolved and incident.resolved_at:
        lines.append(f"Resolved: {incident.resolved_at:%Y-%m-%d %H:%M:%S} UTC")
    if resolved and incident.acknowledgement:
        lines.append(f"Acknowledged by: {incident.acknowledgement}")
    lines.append(f"List: {absolute(incident.link)}")
    return title, "\n".join(lines)
