"""The one place that decides how new information about an attempt merges with what is stored.

Webhooks, API fetches and operator actions all call `merge()`. The rules:
- `pending` may become `success` or `error`;
- a terminal status is final: a later `pending` is stale news and ignored, and a second,
  different terminal status is recorded in the history as a conflict but not applied;
- the error or result of a terminal attempt, which only the API gives, fills in what is missing,
  and the error's type with it;
- an attempt that Seam's answers have left out long and often enough is marked "not found on
  Seam" (`left_out()`); any source that speaks of it again (a webhook, a refresh that finds it)
  clears the mark.
Every change is counted in the hourly rollups (attempts.rollups) in the same transaction.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from attempts import rollups, rows
from attempts.models import TERMINAL_STATUSES, Attempt, Status, StatusChange, WebhookEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observation:
    """What one source says about an attempt."""

    status: str
    action_type: str = ""
    workspace_id: str = ""
    # When the source says it happened (a webhook's occurred_at); None means now.
    at: datetime | None = None
    # True only for the API, which gives the attempt's error and result as Seam holds them.
    has_payload: bool = False
    error: Any = None
    result: Any = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> "Observation":
        return cls(
            status=data["status"],
            action_type=data.get("action_type") or "",
            workspace_id=data.get("workspace_id") or "",
            has_payload=True,
            error=data.get("error"),
            result=data.get("result"),
        )


@dataclass(frozen=True)
class Merged:
    attempt: Attempt
    created: bool
    status_changed: bool
    conflict: bool


def merge(
    action_attempt_id: str,
    observation: Observation,
    *,
    source: str,
    event: WebhookEvent | None = None,
) -> Merged:
    """Merge an observation into the stored attempt, creating it if never seen.

    Safe when several processes merge into the same attempt at once: the row is locked
    (SELECT ... FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE transactions serialize writers).
    An `event` not yet stored (a webhook's) is inserted here, already linked to the attempt:
    linking it afterwards would write the event's row, and all its indexes, a second time. An
    event_id already recorded raises IntegrityError, which rolls back the caller's transaction.
    """
    if observation.status not in Status.values:
        raise ValueError(f"unknown status {observation.status!r}")
    now = timezone.now()
    at = min(observation.at or now, now)
    # No savepoint inside a caller's transaction (a webhook's): nothing here recovers from an
    # error, so a failure rolls back the caller's whole transaction anyway.
    with transaction.atomic(savepoint=False):
        # One locking read; a never-seen attempt is inserted once, with every field it gets.
        attempt = rows.get_for_update(Attempt, "action_attempt_id", action_attempt_id)
        if attempt is None:
            attempt = _create(action_attempt_id, observation, source=source, at=at, now=now)
            if attempt is not None:
                _record(event, attempt)
                rows.insert(
                    StatusChange(
                        attempt=attempt,
                        from_status="",
                        to_status=observation.status,
                        source=source,
                        event=event,
                        at=now,
                    )
                )
                rollups.moved(None, rollups.keys(attempt))
                return Merged(attempt, True, True, False)
            # Another process inserted it first: merge into theirs.
            attempt = rows.get_for_update(Attempt, "action_attempt_id", action_attempt_id)
        _record(event, attempt)
        counted = rollups.keys(attempt)
        old_status = attempt.status
        new_status = observation.status
        fields: set[str] = set()
        status_changed = conflict = False

        if old_status == Status.PENDING and new_status != Status.PENDING:
            attempt.status = new_status
            fields.add("status")
            if new_status in TERMINAL_STATUSES:
                attempt.ended_at = at
                fields.add("ended_at")
            status_changed = True
        elif old_status in TERMINAL_STATUSES and new_status in TERMINAL_STATUSES:
            conflict = new_status != old_status
        if status_changed or conflict:
            rows.insert(
                StatusChange(
                    attempt=attempt,
                    from_status=old_status,
                    to_status=new_status,
                    source=source,
                    conflict=conflict,
                    event=event,
                    at=now,
                )
            )
        if conflict:
            log.warning(
                "attempt=%s conflict stored=%s incoming=%s source=%s",
                action_attempt_id,
                old_status,
                new_status,
                source,
            )

        for name in ("action_type", "workspace_id"):
            value = getattr(observation, name)
            if value and getattr(attempt, name) != value:
                setattr(attempt, name, value)
                fields.add(name)
        if (
            observation.has_payload
            and new_status == attempt.status
            and attempt.is_terminal
            and not attempt.payload_fetched
        ):
            attempt.error = observation.error
            attempt.error_type = error_type_of(observation.error)
            attempt.result = observation.result
            attempt.payload_fetched = True
            fields |= {"error", "error_type", "result", "payload_fetched"}
        # Marks that pages do not show: they move without updated_at, so live pages are not
        # re-sent the row.
        quiet = {"fetched_at"} if source == "api" else set()
        if source == "api":
            attempt.fetched_at = now
        if attempt.missing_since is not None or attempt.not_found:
            # Seam has it after all: what its answers left out before no longer counts.
            if attempt.not_found:
                fields.add("not_found_at")
            attempt.missing_since = attempt.missing_count = attempt.not_found_at = None
            quiet |= {"missing_since", "missing_count"}
        if fields:
            rows.update(attempt, [*fields, *quiet, "updated_at"])
            rollups.moved(counted, rollups.keys(attempt))
        elif quiet:
            rows.update(attempt, quiet)
    return Merged(attempt, False, status_changed, conflict)


def left_out(action_attempt_ids: Iterable[str], *, refreshes: int, over: timedelta) -> int:
    """Seam answered a refresh of these attempts without them: counts the miss, and marks "not
    found on Seam" those left out of at least `refreshes` answers in a row, the first at least
    `over` ago. Only attempts a refresh still asks about count (pending, or ended without their
    error or result); a marked one is asked no more. Returns how many it marked.

    Set-based updates, each atomic on its rows: a merge that finds an attempt meanwhile either
    went first (and the miss starts a new count) or waits for the row and clears it after.
    """
    ids = list(action_attempt_ids)
    if not ids:
        return 0
    now = timezone.now()
    asked = Attempt.objects.filter(
        Q(status=Status.PENDING) | Q(payload_fetched=False),
        action_attempt_id__in=ids,
        not_found_at__isnull=True,
    )
    with transaction.atomic():
        asked.update(
            missing_since=Coalesce(F("missing_since"), Value(now)),
            missing_count=Coalesce(F("missing_count"), Value(0)) + 1,
        )
        # updated_at too: live pages show the mark.
        marked = asked.filter(missing_count__gte=refreshes, missing_since__lte=now - over)
        return marked.update(not_found_at=now, updated_at=now)


def _record(event: WebhookEvent | None, attempt: Attempt) -> None:
    if event is not None and event._state.adding:
        event.attempt = attempt
        rows.insert(event)


def _create(
    action_attempt_id: str, observation: Observation, *, source: str, at: datetime, now: datetime
) -> Attempt | None:
    """Inserts a never-seen attempt; None when another process inserted it first."""
    terminal = observation.status in TERMINAL_STATUSES
    attempt = Attempt(
        action_attempt_id=action_attempt_id,
        status=observation.status,
        action_type=observation.action_type,
        workspace_id=observation.workspace_id,
        first_seen_at=at,
        ended_at=at if terminal else None,
        fetched_at=now if source == "api" else None,
    )
    if observation.has_payload and terminal:
        attempt.error = observation.error
        attempt.error_type = error_type_of(observation.error)
        attempt.result = observation.result
        attempt.payload_fetched = True
    return attempt if rows.insert(attempt, unless_taken="action_attempt_id") else None


def error_type_of(error: Any) -> str:
    """The error's "type" as Seam names it ("device_offline"), or "" when it names none."""
    kind = error.get("type") if isinstance(error, dict) else None
    return kind[: Attempt._meta.get_field("error_type").max_length] if isinstance(kind, str) else ""
