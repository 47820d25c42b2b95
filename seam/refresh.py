"""Refreshing stored attempts from Seam's API: one batched list call, each answer merged."""

import logging
from collections.abc import Iterable

from django.db.models import Q, QuerySet

from attempts.merge import Merged, Observation, merge
from attempts.models import TERMINAL_STATUSES, Attempt, Source, Status
from seam.client import SeamClient, get_client

log = logging.getLogger(__name__)


def fetch_and_merge(
    action_attempt_ids: Iterable[str], client: SeamClient | None = None, **bounds: float
) -> list[Merged]:
    """Asks Seam for these attempts (batched by the client, within the call's `bounds`) and
    merges what it answers.

    Ids Seam does not know are left as they are. Raises SeamError when Seam cannot answer.
    """
    ids = list(dict.fromkeys(action_attempt_ids))
    if not ids:
        return []
    found = (client or get_client()).list(ids, **bounds)
    return [m for data in found if (m := merge_api_attempt(data))]


def merge_api_attempt(data: dict) -> Merged | None:
    """Merges one attempt as the API gives it; one malformed item does not sink its batch."""
    action_attempt_id = data.get("action_attempt_id") if isinstance(data, dict) else None
    if not action_attempt_id or data.get("status") not in Status.values:
        log.warning("seam outcome=skipped reason=malformed_attempt id=%r", action_attempt_id)
        return None
    return merge(str(action_attempt_id), Observation.from_api(data), source=Source.API)


def attempts_needing_fetch() -> QuerySet[Attempt]:
    """Attempts Seam may know more about: pending ones, and ended ones without their payload."""
    return Attempt.objects.filter(
        Q(status=Status.PENDING) | Q(status__in=TERMINAL_STATUSES, payload_fetched=False)
    )
