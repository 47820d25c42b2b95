"""Refreshing stored attempts from Seam's API: one batched list call, each answer merged, and
the ids its answer left out counted (attempts Seam no longer has end up marked so)."""

import logging
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet

from attempts.merge import Merged, Observation, left_out, merge
from attempts.models import TERMINAL_STATUSES, Attempt, Source, Status
from seam.client import SeamClient, get_client

log = logging.getLogger(__name__)


def fetch_and_merge(
    action_attempt_ids: Iterable[str], client: SeamClient | None = None, **bounds: float
) -> list[Merged]:
    """Asks Seam for these attempts (batched by the client, within the call's `bounds`) and
    merges what it answers.

    Ids its answer left out are counted as such (attempts.merge.left_out), and marked "not
    found on Seam" after SEAM_NOT_FOUND_REFRESHES such answers over SEAM_NOT_FOUND_MINUTES.
    Raises SeamError when Seam cannot answer: then nothing is counted.
    """
    ids = list(dict.fromkeys(action_attempt_ids))
    if not ids:
        return []
    found = (client or get_client()).list(ids, **bounds)
    merged = [m for data in found if (m := merge_api_attempt(data))]
    answered = {str(data.get("action_attempt_id")) for data in found if isinstance(data, dict)}
    missing = [i for i in ids if i not in answered]
    if missing:
        marked = left_out(
            missing,
            refreshes=settings.SEAM_NOT_FOUND_REFRESHES,
            over=timedelta(minutes=settings.SEAM_NOT_FOUND_MINUTES),
        )
        log.info("seam outcome=left_out attempts=%d marked_not_found=%d", len(missing), marked)
    return merged


def merge_api_attempt(data: dict) -> Merged | None:
    """Merges one attempt as the API gives it; one malformed item does not sink its batch."""
    action_attempt_id = data.get("action_attempt_id") if isinstance(data, dict) else None
    if not action_attempt_id or data.get("status") not in Status.values:
        log.warning("seam outcome=skipped reason=malformed_attempt id=%r", action_attempt_id)
        return None
    return merge(str(action_attempt_id), Observation.from_api(data), source=Source.API)


def attempts_needing_fetch() -> QuerySet[Attempt]:
    """Attempts Seam may know more about: pending ones, and ended ones without their payload,
    unless Seam no longer has them."""
    return Attempt.objects.filter(
        Q(status=Status.PENDING) | Q(status__in=TERMINAL_STATUSES, payload_fetched=False),
        not_found_at__isnull=True,
    )
