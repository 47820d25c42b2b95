"""What was recorded after a live page loaded: the rows a poll adds to it."""

from typing import Any

from django.db.models import Model, QuerySet

from attempts.filters import filtered_attempts
from attempts.models import Attempt
from attempts.paging import PAGE_SIZE

# How many attempts recorded since a page's newest one a poll looks at, at most.
RECORDED_SINCE_WINDOW = 1000


def newest_pk(model: type[Model] = Attempt) -> int:
    """The newest row recorded: a live page sees those recorded after it."""
    return model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def recorded_after(filtered: QuerySet, pk: int, limit: int = PAGE_SIZE) -> tuple[list, int, int]:
    """The rows of `filtered` recorded after row `pk`: the newest `limit` of them (in the
    queryset's order), how many there are, and the pk to look after next time.

    The primary key's range alone picks the candidates (at most RECORDED_SINCE_WINDOW of them,
    the rest left to the next look); the filters then apply to those rows only, by primary key,
    so a live page's poll costs the same at a million rows whatever its filters."""
    window = list(
        filtered.model.objects.filter(pk__gt=pk)
        .order_by("pk")
        .values_list("pk", flat=True)[:RECORDED_SINCE_WINDOW]
    )
    if not window:
        return [], 0, pk
    matching = list(filtered.filter(pk__in=window))
    return matching[:limit], len(matching), window[-1]


def recorded_since(
    filters: dict[str, Any], pk: int, limit: int = PAGE_SIZE
) -> tuple[list[Attempt], int, int]:
    """The attempts recorded after attempt `pk` that the filters select (see recorded_after)."""
    return recorded_after(filtered_attempts(filters).defer("result"), pk, limit)
