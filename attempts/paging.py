"""Keyset pages shared by the attempts list and the events list: rows newest first by (time, id),
a cursor per page, so page 1,000 costs what page 1 does."""

import heapq
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from operator import attrgetter
from typing import Any

from django import forms
from django.core.cache import cache
from django.db import connection, models
from django.db.models import Q, QuerySet

PAGE_SIZE = 50
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Cursor:
    """A position in a list: the (time, id) of a row, as `<microseconds>_<id>`."""

    at: datetime
    pk: int

    @classmethod
    def of(cls, row: models.Model, field: str) -> "Cursor":
        return cls(getattr(row, field), row.pk)

    @classmethod
    def decode(cls, value: str) -> "Cursor":
        micros, _, pk = value.partition("_")
        try:
            return cls(EPOCH + timedelta(microseconds=int(micros)), int(pk))
        except (ValueError, OverflowError) as e:
            raise ValueError("not a list position") from e

    def encode(self) -> str:
        return f"{(self.at - EPOCH) // timedelta(microseconds=1)}_{self.pk}"


@dataclass
class Page:
    rows: list[Any]
    newer: Cursor | None
    older: Cursor | None


def window(
    qs: QuerySet, field: str, after: Cursor | None, before: Cursor | None, limit: int
) -> list[Any]:
    """Up to `limit` rows of `qs` (ordered newest first by `field`, then id) next to a cursor,
    nearest first: an index range."""
    if before:
        ts, pk = before.at, before.pk
        qs = qs.filter(**{f"{field}__gte": ts}).filter(Q(**{f"{field}__gt": ts}) | Q(id__gt=pk))
        qs = qs.order_by(field, "id")
    elif after:
        ts, pk = after.at, after.pk
        qs = qs.filter(**{f"{field}__lte": ts}).filter(Q(**{f"{field}__lt": ts}) | Q(id__lt=pk))
    return list(qs[:limit])


def page_of(
    querysets: list[QuerySet],
    field: str,
    after: Cursor | None = None,
    before: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """A page of the union of querysets (disjoint, each newest first by `field`, then id). One
    row more than the page tells whether another page exists."""
    windows = [window(qs, field, after, before, size + 1) for qs in querysets]
    merged = heapq.merge(*windows, key=attrgetter(field, "pk"), reverse=not before)
    rows = list(islice(merged, size + 1))
    more = len(rows) > size
    rows = rows[:size]
    if before:
        rows.reverse()
        newer = Cursor.of(rows[0], field) if more else None
        return Page(rows, newer, Cursor.of(rows[-1], field) if rows else None)
    older = Cursor.of(rows[-1], field) if more else None
    return Page(rows, Cursor.of(rows[0], field) if after and rows else None, older)


# The values ever recorded that the filters offer are looked up at most this often.
CHOICES_SECONDS = 30


def distinct_values(
    model: type[models.Model], field: str, key: str, seconds: int = CHOICES_SECONDS
) -> list[str]:
    """The distinct values of an indexed column, by skipping along its index (one seek per
    value, not a scan of every row), cached for `seconds`."""

    def compute() -> list[str]:
        table = connection.ops.quote_name(model._meta.db_table)
        column = connection.ops.quote_name(field)
        # Empty values are left out, in the very words of a partial index that leaves them out
        # (SQLite matches the terms as written): else it walks another index, a second at a
        # million attempts for the error types.
        given = f"NOT ({column} = '')"
        after = f"{column} > t.v AND {given}"
        sql = (
            f"WITH RECURSIVE t(v) AS (SELECT MIN({column}) FROM {table} WHERE {given} "  # noqa: S608
            f"UNION ALL SELECT (SELECT MIN({column}) FROM {table} WHERE {after}) "
            "FROM t WHERE t.v IS NOT NULL) SELECT v FROM t WHERE v IS NOT NULL"
        )
        with connection.cursor() as c:
            c.execute(sql)
            return [v for (v,) in c.fetchall()]

    return cache.get_or_set(key, compute, seconds)


class AnyChoiceField(forms.MultipleChoiceField):
    """Offers the known values but accepts any: Seam adds types, and a new one must be
    filterable."""

    def __init__(self, *, max_length: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length

    def valid_value(self, value: str) -> bool:
        return 0 < len(value) <= self.max_length


class PagedFilterForm(forms.Form):
    """A list's search box and its page position: after or before a cursor, not both."""

    q = forms.CharField(required=False, max_length=255)
    after = forms.CharField(required=False, max_length=64)
    before = forms.CharField(required=False, max_length=64)

    def offer(self, name: str, known: set[str]) -> None:
        """The choices of an AnyChoiceField: the known values and any the URL asks for."""
        field = self.fields[name]
        values = set(known)
        if hasattr(self.data, "getlist"):
            values |= {v for v in self.data.getlist(name) if field.valid_value(v)}
        field.choices = [(v, v) for v in sorted(values)]

    def _clean_cursor(self, name: str) -> Cursor | None:
        value = self.cleaned_data.get(name)
        if not value:
            return None
        try:
            return Cursor.decode(value)
        except ValueError as e:
            raise forms.ValidationError("Not a position in the list.") from e

    def clean_after(self) -> Cursor | None:
        return self._clean_cursor("after")

    def clean_before(self) -> Cursor | None:
        return self._clean_cursor("before")

    def clean_q(self) -> str:
        return self.cleaned_data["q"].strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("after") and data.get("before"):
            raise forms.ValidationError("Give either after or before, not both.")
        return data
