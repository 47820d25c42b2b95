"""Figures worked out once per interval for every viewer: the list's counts, the insights."""

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone

STATS_SECONDS = 30


def figures_key(prefix: str, filters: dict[str, Any], *more: Any) -> str:
    """The cache key of figures computed for these filters (in any order) and arguments."""
    canonical = {k: sorted(v) if isinstance(v, list) else v for k, v in filters.items()}
    raw = json.dumps([canonical, *more], sort_keys=True, default=str)
    return f"{prefix}:" + hashlib.sha256(raw.encode()).hexdigest()[:32]


def shared(key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """compute()'s figures, worked out at most once per STATS_SECONDS for all viewers of the
    same key: the last result is kept longer, and one process (the holder of a cache lock)
    recomputes it while the others keep serving it. The figures carry their `computed_at`."""
    figures = cache.get(key)
    if figures and figures["computed_at"] > timezone.now() - timedelta(seconds=STATS_SECONDS):
        return figures
    locked = cache.add(key + ":lock", 1, 30)
    if figures and not locked:
        return figures  # another process is recomputing them
    try:
        figures = {"computed_at": timezone.now(), **compute()}
        cache.set(key, figures, STATS_SECONDS * 20)
    finally:
        if locked:
            cache.delete(key + ":lock")
    return figures
