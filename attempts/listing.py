"""One page of the attempts list: the filtered attempts read in index order, a page at a time."""

from itertools import product
from typing import Any

from django.db.models import QuerySet

from attempts import paging
from attempts.filters import filtered_attempts
from attempts.models import Attempt, Status
from attempts.paging import PAGE_SIZE, Cursor, Page

# Beyond this many (type, status) combinations a page is one query with a sort instead.
MAX_MERGED = 24


def list_page(
    filters: dict[str, Any],
    after: Cursor | None = None,
    before: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """One page of the filtered list. Several types or statuses would make the database sort
    every matching row; instead each (type, status) pair reads its own index range in order,
    at most one page of it, and the pages are merged."""
    if filters.get("error_type"):
        # Each error type reads its own range of the error-type index.
        kinds = filters["error_type"]
        if len(kinds) == 1 or len(kinds) > MAX_MERGED or filters.get("q"):
            return page_of([filtered_attempts(filters)], after, before, size)
        querysets = [filtered_attempts({**filters, "error_type": [k]}) for k in kinds]
        return page_of(querysets, after, before, size)
    types = filters.get("action_type") or [None]
    statuses = filters.get("status") or (Status.values if filters.get("action_type") else [None])
    pairs = list(product(types, statuses))
    if len(pairs) == 1 or len(pairs) > MAX_MERGED or filters.get("q"):
        return page_of([filtered_attempts(filters)], after, before, size)
    querysets = [
        filtered_attempts(
            {**filters, "action_type": [t] if t else None, "status": [s] if s else None}
        )
        for t, s in pairs
    ]
    return page_of(querysets, after, before, size)


def page_of(
    querysets: list[QuerySet[Attempt]],
    after: Cursor | None = None,
    before: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """A page of the union of several querysets (disjoint, each newest first)."""
    return paging.page_of(
        [qs.defer("result") for qs in querysets], "first_seen_at", after, before, size
    )
