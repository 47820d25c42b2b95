"""Recording one verified Seam event, once, and merging it into its attempt.

The webhook receiver (seam/webhooks.py) and the catch-up of missed deliveries from Seam's
/events/list (`sync_attempts`) both call `record_event`.

The events carry no error or result: a terminal attempt recorded here keeps payload_fetched=False
until the live poll or the catch-up fetches it from the API, never inside this request.
"""

from datetime import UTC, datetime
from typing import Any

from django.db import DataError, IntegrityError, transaction
from django.utils.dateparse import parse_datetime

from attempts import rows
from attempts.events import is_known_type
from attempts.merge import Observation, merge
from attempts.models import Source, Status, WebhookEvent
from dashboard.sqlite import write_turn

OUTCOME_STATUS = {"succeeded": Status.SUCCESS, "failed": Status.ERROR}


class InvalidEvent(ValueError):
    """A payload that is not a Seam event the dashboard can record."""


def text_field(payload: dict[str, Any], name: str, max_length: int) -> str:
    """A string field of the event, or "" when absent, not a string, or not storable: too long,
    or holding a NUL or a lone surrogate (JSON allows both; the databases take neither)."""
    value = payload.get(name)
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        return ""
    try:
        value.encode()
    except UnicodeEncodeError:
        return ""
    return value


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
        if parsed is None:
            return None
        # In UTC now: an offset at the ends of the calendar overflows there, not when stored.
        return parsed.replace(tzinfo=parsed.tzinfo or UTC).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def event_status(event_type: str, payload: dict[str, Any]) -> str:
    """An action attempt event's status: from its type's outcome, else its `status` field.

    An event that tells neither still says the attempt exists: it counts as pending, which the
    merge never lets regress an ended attempt.
    """
    outcome = event_type.rsplit(".", 1)[-1]
    if outcome in OUTCOME_STATUS:
        return OUTCOME_STATUS[outcome]
    status = payload.get("status")
    return status if status in Status.values else Status.PENDING


def record_event(
    payload: Any, svix_id: str = "", wait_seconds: float | None = None
) -> tuple[WebhookEvent, bool]:
    """Record one verified event payload once, and merge an action attempt event into its attempt.

    Returns the event and whether it was new; an event_id already recorded (a retry, or the same
    event from /events/list) changes nothing. Raises InvalidEvent for a payload it cannot record,
    and OperationalError when the database is unreachable or (SQLite, with `wait_seconds`) its
    write lock stays taken. Safe when the same event arrives in several processes at once.
    """
    if not isinstance(payload, dict):
        raise InvalidEvent("body is not a JSON object")
    event_id = text_field(payload, "event_id", 255)
    event_type = text_field(payload, "event_type", 255)
    if not event_id:
        raise InvalidEvent("event_id missing, or not a storable string of at most 255 characters")
    if not event_type:
        raise InvalidEvent("event_type missing, or not a storable string of at most 255 characters")
    action_attempt_id = ""
    if event_type.startswith("action_attempt."):
        action_attempt_id = text_field(payload, "action_attempt_id", 255)
    event = WebhookEvent(
        event_id=event_id,
        event_type=event_type,
        payload=payload,
        svix_id=svix_id[:255],
        occurred_at=_datetime(payload.get("occurred_at")),
        created_at=_datetime(payload.get("created_at")),
        known_type=is_known_type(event_type),
        workspace_id=text_field(payload, "workspace_id", 255),
    )
    try:
        with write_turn(wait_seconds), transaction.atomic():
            if action_attempt_id:
                observation = Observation(
                    status=event_status(event_type, payload),
                    action_type=text_field(payload, "action_type", 100),
                    workspace_id=text_field(payload, "workspace_id", 255),
                    at=event.occurred_at,
                )
                # merge() inserts the event, linked to its attempt; a duplicate's insert fails
                # there and takes the merge back with it.
                merge(action_attempt_id, observation, source=Source.WEBHOOK, event=event)
            else:
                rows.insert(event)
    except IntegrityError:
        # Another delivery of this event committed first (on PostgreSQL the insert waited for it).
        existing = WebhookEvent.objects.filter(event_id=event_id).first()
        if existing is None:
            raise
        return existing, False
    except DataError as e:
        # PostgreSQL refuses some JSON that Python accepts (a \u0000 in a string, for one).
        raise InvalidEvent("payload cannot be stored") from e
    return event, True
