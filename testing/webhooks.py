"""Seam's webhook deliveries as the tests make them: events, signed by the signing library."""

import base64
import json
import os
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from testing.servers import Gunicorn

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
OCCURRED_AT = "2026-01-02T03:04:05.000Z"


def seam_event(
    event_id: str = "evt_1",
    event_type: str = "action_attempt.lock_door.succeeded",
    action_attempt_id: str = "aa_1",
    **fields,
) -> dict:
    status = {"succeeded": "success", "failed": "error"}.get(event_type.rsplit(".", 1)[-1])
    return {
        "event_id": event_id,
        "event_type": event_type,
        "action_attempt_id": action_attempt_id,
        "action_type": "LOCK_DOOR",
        "status": status,
        "workspace_id": "ws_1",
        "created_at": OCCURRED_AT,
        "occurred_at": OCCURRED_AT,
        **fields,
    }


def signed_headers(
    body: bytes, msg_id: str = "msg_1", at: datetime | None = None, secret: str = SECRET
) -> dict[str, str]:
    at = at or datetime.now(UTC)
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(int(at.timestamp())),
        "svix-signature": Webhook(secret).sign(msg_id, at, body.decode()),
        "content-type": "application/json",
    }


def deliver(server: Gunicorn, payload, headers: dict[str, str] | None = None) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return httpx.post(
        f"{server.url}/webhooks/seam/",
        content=body,
        headers=signed_headers(body) if headers is None else headers,
        timeout=10,
    )


def bad_signature(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "svix-signature": "v1," + base64.b64encode(b"x" * 32).decode()}
