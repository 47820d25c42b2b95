"""Reading the rollups (attempts/rollups.py keeps them): a time range as the whole days of the
daily tables and the hours around them of the hourly ones, read in one statement."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import Q, QuerySet, Sum

from attempts.rollups import DAY, EDGES_US, bucket_upper, day_of


def split(start: datetime | None, end: datetime | None) -> list[tuple[bool, Q]]:
    """Whole hours [start, end) (None: unbounded) as (daily, Q on `start`) pieces: the daily
    table for the whole days within, the hourly one for the hours around them."""
    if start is not None and end is not None and start >= end:
        return []
    first_day = None
    if start is not None:
        first_day = day_of(start) if day_of(start) == start else day_of(start) + DAY
    last_day = None if end is None else day_of(end)
    if first_day is not None and last_day is not None and first_day >= last_day:
        return [(False, Q(start__gte=start, start__lt=end))]
    daily, hourly = Q(), Q(pk__in=[])
    if first_day is not None:
        daily &= Q(start__gte=first_day)
        hourly |= Q(start__gte=start, start__lt=first_day)
    if last_day is not None:
        daily &= Q(start__lt=last_day)
        hourly |= Q(start__gte=last_day, start__lt=end)
    return [(True, daily), (False, hourly)]


def parts(
    hourly: type[models.Model],
    daily: type[models.Model],
    narrow: Callable[[QuerySet], QuerySet],
    start: datetime | None,
    end: datetime | None,
    by: tuple[str, ...],
) -> list[QuerySet]:
    """Querysets of (*by, count) of the rollup rows narrowed by `narrow` in whole hours
    [start, end), read from the daily table where whole days allow; see united()."""
    return [
        narrow((daily if is_daily else hourly).objects.filter(within))
        .values_list(*by)
        .annotate(n=Sum("count"))
        .order_by()
        for is_daily, within in split(start, end)
    ]


def united(parts: list[QuerySet]) -> list[tuple[Any, ...]]:
    """The rows of these querysets (of the same columns) from one UNION ALL statement, which
    reads one moment of the database, and costs one round trip."""
    if not parts:
        return []
    first, *rest = parts
    return list(first.union(*rest, all=True))


def percentile(buckets: dict[int, int], share: float) -> timedelta | None:
    """The time under which `share` of the attempts counted in these buckets ended: the upper
    edge of the bucket where that share is reached (None if nothing ended)."""
    total = sum(buckets.values())
    if not total:
        return None
    reached = 0
    for bucket in sorted(buckets):
        reached += buckets[bucket]
        if reached >= share * total:
            return bucket_upper(bucket) or timedelta(microseconds=EDGES_US[-1])
    return None
