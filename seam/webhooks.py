"""Seam's webhook deliveries (through Svix): read within bounds, verified, then recorded once.

`seam_webhook` is the endpoint Seam posts to; seam/ingest.py records what it verified. Every
answer is one log line, and a signal the metrics count.
"""

import binascii
import json
import logging
import time
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from standardwebhooks.webhooks import WebhookVerificationError

from dashboard.database import unavailable
from seam import secrets, signals
from seam.ingest import InvalidEvent, record_event, text_field

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024

# Svix gives up on a delivery after 15 s: a webhook that cannot have SQLite's write lock (a
# backup, a long prune) within this answers 503 in time for Svix to retry it later.
WRITE_WAIT_SECONDS = 5.0
RETRY_AFTER_SECONDS = 10


class Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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


def _verify(request: HttpRequest, body: bytes) -> set[str]:
    """The workspaces whose secrets verify the delivery ("" for an entry bound to none)."""
    entries, problems = secrets.parse(settings.SEAM_WEBHOOK_SECRET)
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
    verified, refusal = set(), "no webhook secret is configured"
    for entry in entries:
        try:
            entry.webhook.verify(body, headers, json_parse=False)
        except WebhookVerificationError as e:
            refusal = str(e)
        except (ValueError, TypeError, OverflowError, binascii.Error):
            # The library raises these on malformed headers: an entry without a comma, bad base64.
            raise Rejected(400, "malformed svix-signature header") from None
        else:
            verified.add(entry.workspace_id)
    if not verified and problems:
        # The delivery may be signed with the entry that cannot be read: Svix retries a 503.
        log.error("webhook secret misconfigured: %s", " ".join(problems))
        raise Rejected(503, "webhook secret misconfigured")
    if not verified:
        raise Rejected(401, refusal)
    return verified


def _in_workspace(payload: Any, verified: set[str]) -> None:
    """A secret bound to a workspace verifies only that workspace's events."""
    if "" in verified:
        return
    workspace_id = payload.get("workspace_id") if isinstance(payload, dict) else None
    if workspace_id not in verified:
        raise Rejected(401, "signed with the secret of another workspace")


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
    payload: Any = None
    reason = ""
    try:
        payload = _verified_payload(request)
        try:
            event, created = record_event(payload, svix_id, WRITE_WAIT_SECONDS)
        except InvalidEvent as e:
            raise Rejected(400, str(e)) from None
        except DatabaseError as e:
            why = unavailable(e)
            if why is None:
                # A fault, not an outage: the request's own line logs it (a 500), Svix retries.
                _log_delivery(svix_id, payload, "rejected", 500, type(e).__name__, started)
                signals.webhook_delivery.send_robust(sender=None, outcome="rejected")
                raise
            # Nothing was committed: Svix retries on a 5xx, and the retry is recorded once.
            raise Rejected(503, f"database unavailable ({why})") from None
        status, outcome = 200, "recorded" if created else "duplicate"
        response = JsonResponse({"ok": True, "event_id": event.event_id, "recorded": created})
    except Rejected as e:
        status, outcome, reason = e.status, "rejected", e.reason
        response = JsonResponse({"ok": False, "error": reason}, status=status)
        if status == 503:
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    _log_delivery(svix_id, payload, outcome, status, reason, started)
    signals.webhook_delivery.send_robust(sender=None, outcome=outcome)
    return response


def _verified_payload(request: HttpRequest) -> Any:
    if not settings.SEAM_WEBHOOK_SECRET:
        raise Rejected(503, "SEAM_WEBHOOK_SECRET is not configured")
    body = _read_body(request)
    verified = _verify(request, body)
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise Rejected(400, "body is not JSON") from None
    _in_workspace(payload, verified)
    return payload


def _log_delivery(
    svix_id: str, payload: Any, outcome: str, status: int, reason: str, started: float
) -> None:
    fields = payload if isinstance(payload, dict) else {}
    log.info(
        "webhook svix_id=%s event_type=%s event_id=%s outcome=%s status=%s%s duration_ms=%.1f",
        _log_value(svix_id),
        _log_value(text_field(fields, "event_type", 255)),
        _log_value(text_field(fields, "event_id", 255)),
        outcome,
        status,
        f" reason={_log_value(reason)}" if reason else "",
        (time.perf_counter() - started) * 1000,
    )
