"""Seam's webhook deliveries (through Svix): verified, recorded once, merged into their attempt.

`seam_webhook` is the endpoint Seam posts to. `record_event` records one verified event payload
and merges it; the catch-up of missed deliveries from Seam's /events/list calls it too.

The events carry no error or result: a terminal attempt recorded here keeps payload_fetched=False
until the live poll or the catch-up fetches it from the API, never inside this request.
"""

import binascii
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.http import HttpRequest, JsonResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from attempts import rows, signals
from attempts.merge import Observation, merge
from attempts.models import Source, Status, WebhookEvent
from dashboard.sqlite import busy_timeout

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024

# The action types Seam documents events for, each `.succeeded` or `.failed`.
DOCUMENTED_EVENT_ACTIONS = (
    "lock_door",
    "unlock_door",
    "simulate_keypad_code_entry",
    "simulate_manual_lock_via_keypad",
)
DOCUMENTED_ACTION_ATTEMPT_EVENTS = frozenset(
    f"action_attempt.{action}.{outcome}"
    for action in DOCUMENTED_EVENT_ACTIONS
    for outcome in ("succeeded", "failed")
)
# Seam's other event families: recorded as known, never applied to an attempt.
SEAM_EVENT_NAMESPACES = frozenset(
    {
        "access_code",
        "access_grant",
        "access_method",
        "acs_access_group",
        "acs_credential",
        "acs_encoder",
        "acs_entrance",
        "acs_system",
        "acs_user",
        "client_session",
        "connect_webview",
        "connected_account",
        "device",
        "enrollment_automation",
        "lock",
        "noise_sensor",
        "phone",
        "thermostat",
    }
)
OUTCOME_STATUS = {"succeeded": Status.SUCCESS, "failed": Status.ERROR}


class InvalidEvent(ValueError):
    """A payload that is not a Seam event the dashboard can record."""


class Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _text(payload: dict[str, Any], name: str, max_length: int) -> str:
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


def is_known_type(event_type: str) -> bool:
    if event_type.startswith("action_attempt."):
        return event_type in DOCUMENTED_ACTION_ATTEMPT_EVENTS
    return event_type.split(".", 1)[0] in SEAM_EVENT_NAMESPACES and "." in event_type


_write_turn_fds: dict[str, int] = {}
# Svix gives up on a delivery after 15 s: a webhook that cannot have SQLite's write lock (a
# backup, a long prune) within this answers 503 in time for Svix to retry it later.
WRITE_WAIT_SECONDS = 5.0
POLL_SECONDS = 0.0001
RETRY_AFTER_SECONDS = 10


@contextmanager
def sqlite_write_turn(wait_seconds: float | None = None) -> Iterator[None]:
    """On SQLite, wait for the write lock on an OS file lock rather than SQLite's busy handler.

    SQLite's handler polls with sleeps of up to 100 ms, so under a burst the workers' writes
    go idle and starve one another; a blocked flock() wakes as soon as the lock is free.
    With `wait_seconds`, the file lock and then SQLite's lock are waited for that long in all,
    else OperationalError.
    """
    if connection.vendor != "sqlite":
        yield
        return
    path = f"{connection.settings_dict['NAME']}-webhook-lock"
    fd = _write_turn_fds.get(path)
    if fd is None:
        fd = _write_turn_fds[path] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    if wait_seconds is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        bounded: AbstractContextManager[None] = nullcontext()
    else:
        deadline = time.monotonic() + wait_seconds
        _flock_until(fd, deadline)
        bounded = busy_timeout(connection, deadline - time.monotonic())
    try:
        with bounded:
            yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _flock_until(fd: int, deadline: float) -> None:
    # flock() cannot time out, so it is retried. A webhook holds the turn for under a millisecond:
    # retried every millisecond, the turn sat idle after most releases and the workers took a
    # fifth fewer webhooks than a blocking flock() lets them.
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise OperationalError("database is locked (waited for the write turn)") from None
            time.sleep(POLL_SECONDS)


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
    event_id = _text(payload, "event_id", 255)
    event_type = _text(payload, "event_type", 255)
    if not event_id:
        raise InvalidEvent("event_id missing, or not a storable string of at most 255 characters")
    if not event_type:
        raise InvalidEvent("event_type missing, or not a storable string of at most 255 characters")
    action_attempt_id = ""
    if event_type.startswith("action_attempt."):
        action_attempt_id = _text(payload, "action_attempt_id", 255)
    event = WebhookEvent(
        event_id=event_id,
        event_type=event_type,
        payload=payload,
        svix_id=svix_id[:255],
        occurred_at=_datetime(payload.get("occurred_at")),
        created_at=_datetime(payload.get("created_at")),
        known_type=is_known_type(event_type),
    )
    try:
        with sqlite_write_turn(wait_seconds), transaction.atomic():
            if action_attempt_id:
                observation = Observation(
                    status=event_status(event_type, payload),
                    action_type=_text(payload, "action_type", 100),
                    workspace_id=_text(payload, "workspace_id", 255),
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


@lru_cache(maxsize=4)
def _webhook(secret: str) -> Webhook:
    return Webhook(secret)


def _read_body(request: HttpRequest) -> bytes:
    """The body, read in bounded chunks: never more than MAX_BODY_BYTES + 1 bytes in memory."""
    length = request.META.get("CONTENT_LENGTH")
    if length:
        try:
            size = int(length)
        except ValueError:
            raise Rejected(400, "Content-Length is not a number") from None
        if size > MAX_BODY_BYTES:
            raise Rejected(413, f"body over {MAX_BODY_BYTES} bytes")
        stream = request
    elif request.META.get("wsgi.input_terminated"):
        # A chunked body: Django sees no Content-Length and would read nothing, so read the
        # server's de-chunked input directly, up to the limit.
        stream = request.META["wsgi.input"]
    elif request.META.get("HTTP_TRANSFER_ENCODING"):
        raise Rejected(411, "Content-Length required")
    else:
        return b""
    chunks = []
    total = 0
    while chunk := stream.read(READ_CHUNK_BYTES):
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise Rejected(413, f"body over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _verify(request: HttpRequest, body: bytes) -> None:
    try:
        webhook = _webhook(settings.SEAM_WEBHOOK_SECRET)
    except (ValueError, binascii.Error):
        log.error("SEAM_WEBHOOK_SECRET is not a whsec_ secret in base64")
        raise Rejected(503, "webhook secret misconfigured") from None
    headers = {
        "webhook-id": request.META.get("HTTP_SVIX_ID", ""),
        "webhook-timestamp": request.META.get("HTTP_SVIX_TIMESTAMP", ""),
        "webhook-signature": request.META.get("HTTP_SVIX_SIGNATURE", ""),
    }
    missing = [name.replace("webhook", "svix") for name, value in headers.items() if not value]
    if missing:
        raise Rejected(400, f"missing header {', '.join(missing)}")
    try:
        body.decode()
    except UnicodeDecodeError:
        raise Rejected(400, "body is not UTF-8") from None
    try:
        webhook.verify(body, headers, json_parse=False)
    except WebhookVerificationError as e:
        raise Rejected(401, str(e)) from None
    except (ValueError, TypeError, OverflowError, binascii.Error):
        # The library raises these on malformed headers: an entry without a comma, bad base64.
        raise Rejected(400, "malformed svix-signature header") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _log_value(value: str) -> str:
    value = value[:200]
    if value and value.isprintable() and not any(c in value for c in ' "='):
        return value
    return json.dumps(value)


@csrf_exempt
@require_POST
def seam_webhook(request: HttpRequest) -> JsonResponse:
    started = time.perf_counter()
    svix_id = request.META.get("HTTP_SVIX_ID", "")
    event_type = event_id = reason = ""
    try:
        if not settings.SEAM_WEBHOOK_SECRET:
            raise Rejected(503, "SEAM_WEBHOOK_SECRET is not configured")
        body = _read_body(request)
        _verify(request, body)
        try:
            payload = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise Rejected(400, "body is not JSON") from None
        if isinstance(payload, dict):
            event_type = _text(payload, "event_type", 255)
            event_id = _text(payload, "event_id", 255)
        try:
            event, created = record_event(payload, svix_id, WRITE_WAIT_SECONDS)
        except InvalidEvent as e:
            raise Rejected(400, str(e)) from None
        except (OperationalError, InterfaceError) as e:
            # Nothing was committed: Svix retries on a 5xx, and the retry is recorded once.
            raise Rejected(503, f"database unavailable ({type(e).__name__})") from None
        status, outcome = 200, "recorded" if created else "duplicate"
        response = JsonResponse({"ok": True, "event_id": event.event_id, "recorded": created})
    except Rejected as e:
        status, outcome, reason = e.status, "rejected", e.reason
        response = JsonResponse({"ok": False, "error": reason}, status=status)
        if status == 503:
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    log.info(
        "webhook svix_id=%s event_type=%s event_id=%s outcome=%s status=%s%s duration_ms=%.1f",
        _log_value(svix_id),
        _log_value(event_type),
        _log_value(event_id),
        outcome,
        status,
        f" reason={_log_value(reason)}" if reason else "",
        (time.perf_counter() - started) * 1000,
    )
    signals.webhook_delivery.send_robust(sender=None, outcome=outcome)
    return response
