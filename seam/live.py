"""Keeping the attempts in open pages fresh from Seam, at a cost to Seam that does not grow with
the number of viewers.

A page's poll asks `refresh()` for the attempts in view. Those that Seam may still tell us more
about (pending, or ended without their error or result) and that nobody fetched within
SEAM_POLL_SECONDS are fetched in one batched call. All coordination lives in the shared cache, so
it holds across gunicorn workers and hosts:
- a freshness mark per attempt (expiring after SEAM_POLL_SECONDS) says it was just fetched;
- a single-flight lock (cache.add) lets one request call Seam while the others answer from the
  database at once;
- after a failure, a back-off mark suppresses calls for a growing interval (at most 30 s, so
  open pages see Seam back soon), and the time of the first failure tells pages since when their
  data may be stale.

No page waits on Seam: a refresh made inside a page's request or poll makes one try and waits at
most PAGE_WAIT_SECONDS, then the page shows what is recorded; the next poll and sync_attempts try
again. An operator's explicit request (an id never recorded, Track, "Refresh from Seam") always
asks Seam, whatever the back-off, with the client's retries for at most EXPLICIT_WAIT_SECONDS; its
success ends the back-off for everyone.
"""

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from attempts.merge import Merged
from attempts.models import Attempt, Status
from seam.client import SeamError, SeamNotFound, get_client
from seam.refresh import attempts_needing_fetch, fetch_and_merge, merge_api_attempt

log = logging.getLogger(__name__)

LOCK_KEY = "seam:refresh-lock"
BACKOFF_KEY = "seam:backoff"
FAILURES_KEY = "seam:failures"
STALE_SINCE_KEY = "seam:stale-since"
ERROR_KEY = "seam:error"
# Longer than the client's bounded retries, so a slow call never loses its lock midway.
LOCK_SECONDS = 60
MAX_BACKOFF_SECONDS = 30
# Inside a page's request: one try, this long in all (the page must answer within 2 s).
PAGE_WAIT_SECONDS = 1.5
PAGE_CALL = {"max_attempts": 1, "max_total": PAGE_WAIT_SECONDS}
# An operator asked and waits for the answer: the client's retries, within 10 s in all.
EXPLICIT_WAIT_SECONDS = 9.5
EXPLICIT_CALL = {"max_total": EXPLICIT_WAIT_SECONDS}


@dataclass(frozen=True)
class SeamState:
    """What a page says about its data: whether Seam is asked at all, and since when it fails."""

    configured: bool
    stale_since: datetime | None = None
    error: str = ""
    fetched: int = 0

    @property
    def stale(self) -> bool:
        return self.stale_since is not None

    @property
    def label(self) -> str:
        if not self.configured:
            return "off"
        return "stale" if self.stale else "ok"


def fresh_key(action_attempt_id: str) -> str:
    # Ids are Seam's strings: hashed into a short key every cache backend accepts.
    return "seam:fresh:" + hashlib.blake2b(action_attempt_id.encode(), digest_size=12).hexdigest()


# What refresh() reads of an attempt.
REFRESH_FIELDS = ("action_attempt_id", "status", "payload_fetched", "not_found_at")


def needs_fetch(attempt: Attempt) -> bool:
    """Seam may still tell us more: it is pending, or it ended without its error or result,
    and Seam has not stopped answering about it (not found on Seam)."""
    if attempt.not_found:
        return False
    return attempt.status == Status.PENDING or not attempt.payload_fetched


def seam_state() -> SeamState:
    if not settings.SEAM_API_KEY:
        return SeamState(configured=False)
    found = cache.get_many([STALE_SINCE_KEY, ERROR_KEY])
    return SeamState(True, found.get(STALE_SINCE_KEY), found.get(ERROR_KEY, ""))


def refresh(attempts: Iterable[Attempt]) -> SeamState:
    """Fetches, in one call, the attempts among these that need it and are not fresh."""
    state = seam_state()
    if not state.configured:
        return state
    keys = {fresh_key(a.action_attempt_id): a.action_attempt_id for a in attempts if needs_fetch(a)}
    if not keys or cache.get(BACKOFF_KEY):
        return state
    due = stale_ids(keys)
    if not due or not cache.add(LOCK_KEY, 1, LOCK_SECONDS):
        return state
    try:
        # Another request may have fetched them between our look and our lock, and what it
        # fetched may have ended since this request read them.
        due = stale_ids({fresh_key(i): i for i in due})
        if due:
            still = attempts_needing_fetch().filter(action_attempt_id__in=due)
            due = list(still.values_list("action_attempt_id", flat=True))
        if not due:
            return state
        return fetch(due, state, PAGE_CALL)
    finally:
        cache.delete(LOCK_KEY)


def stale_ids(keys: dict[str, str]) -> list[str]:
    """The ids whose mark is missing or older than the interval. The mark holds its own time:
    some caches (the database one) keep expiry times only to the second."""
    marks = cache.get_many(list(keys))
    fresh_after = time.time() - settings.SEAM_POLL_SECONDS
    return [i for k, i in keys.items() if marks.get(k, 0) <= fresh_after]


def fetch(
    action_attempt_ids: list[str],
    state: SeamState | None = None,
    bounds: dict[str, float] = EXPLICIT_CALL,
) -> SeamState:
    """Asks Seam now (one batched call), marks the attempts fresh, and records the outcome.
    Called directly, it is an operator's explicit request: whatever the back-off."""
    state = state or seam_state()
    try:
        fetch_and_merge(action_attempt_ids, **bounds)
    except SeamError as e:
        return failed(e)
    now = time.time()
    marks = {fresh_key(i): now for i in action_attempt_ids}
    cache.set_many(marks, settings.SEAM_POLL_SECONDS + 1)
    answered(state)
    return SeamState(True, fetched=len(action_attempt_ids))


def track(action_attempt_id: str) -> Merged | None:
    """An operator's explicit request for an attempt never recorded: asks Seam whatever the
    back-off and records what it answers (None: the answer was not an attempt). Raises
    SeamNotFound when Seam has no such attempt, SeamError when it did not answer."""
    state = seam_state()
    try:
        data = get_client().get(action_attempt_id, **EXPLICIT_CALL)
    except SeamNotFound:
        answered(state)
        raise
    except SeamError as e:
        failed(e)
        raise
    answered(state)
    return merge_api_attempt(data)


def answered(state: SeamState) -> None:
    """Seam answered: the back-off ends for everyone, and pages stop saying they are stale."""
    if state.stale or cache.get(FAILURES_KEY) or cache.get(BACKOFF_KEY):
        cache.delete_many([FAILURES_KEY, STALE_SINCE_KEY, ERROR_KEY, BACKOFF_KEY])
        log.info("seam outcome=recovered")


def failed(error: SeamError) -> SeamState:
    """Backs off: no call for SEAM_POLL_SECONDS × 2^failures, up to MAX_BACKOFF_SECONDS."""
    cache.add(FAILURES_KEY, 0, None)
    try:
        failures = cache.incr(FAILURES_KEY)
    except ValueError:
        failures = 1
    delay = backoff_seconds(failures)
    cache.set(BACKOFF_KEY, 1, delay)
    now = timezone.now()
    cache.add(STALE_SINCE_KEY, now, None)
    cache.set(ERROR_KEY, str(error), None)
    log.warning(
        "seam outcome=failed failures=%d backoff=%ss reason=%r", failures, delay, str(error)
    )
    return SeamState(True, cache.get(STALE_SINCE_KEY) or now, str(error))


def backoff_seconds(failures: int) -> int:
    return min(MAX_BACKOFF_SECONDS, settings.SEAM_POLL_SECONDS * 2 ** min(failures, 20))
