"""SEAM_WEBHOOK_SECRET as its entries: one `whsec_…` secret, or a comma list of them.

An entry `<workspace_id>:whsec_…` verifies only the events of that workspace (each workspace
registers its endpoint with its own secret); an entry without a prefix verifies any event (one
endpoint registered in several workspaces, or the old and the new secret side by side while one
is rotated). A malformed entry is named by its position, never by its value: a system check
(seam/checks.py) refuses it before a deploy, and the receiver answers 503 to a delivery that no
other entry verifies, so that Svix retries it once the setting is mended.
"""

import base64
import binascii
from dataclasses import dataclass
from functools import lru_cache

from standardwebhooks import Webhook


@dataclass(frozen=True)
class WebhookSecret:
    position: int  # 1 for the first entry, as people count
    workspace_id: str  # "": any workspace
    webhook: Webhook


@lru_cache(maxsize=4)
def parse(setting: str) -> tuple[tuple[WebhookSecret, ...], tuple[str, ...]]:
    """The well-formed entries, and a reason for each malformed one."""
    secrets, problems = [], []
    entries = setting.split(",")
    for position, entry in enumerate(entries, 1):
        where = f"SEAM_WEBHOOK_SECRET entry {position} of {len(entries)}"
        entry = entry.strip()
        # Base64 has no colon: one names the workspace the secret is bound to.
        workspace_id, _, secret = entry.rpartition(":")
        workspace_id = workspace_id.strip()
        if not entry:
            problems.append(f"{where} is empty.")
        elif ":" in entry and (not workspace_id or any(c.isspace() for c in workspace_id)):
            problems.append(f"{where} names no workspace before its colon.")
        elif not well_formed(secret.strip()):
            problems.append(f"{where} is not a whsec_ secret in base64.")
        else:
            secrets.append(WebhookSecret(position, workspace_id, Webhook(secret.strip())))
    return tuple(secrets), tuple(problems)


def well_formed(secret: str) -> bool:
    # Strictly: a lenient decode takes almost any text, an API key pasted by mistake included.
    if not secret.startswith("whsec_"):
        return False
    try:
        return bool(base64.b64decode(secret.removeprefix("whsec_"), validate=True))
    except (ValueError, binascii.Error):
        return False


def signing_secret(setting: str) -> str:
    """The first entry's secret, for what signs deliveries itself (the demo)."""
    return setting.split(",")[0].rpartition(":")[2].strip()
