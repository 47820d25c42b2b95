"""One-row reads and writes with their SQL built once, for the webhook's write path.

Model.save() builds its statement anew on every call, and on SQLite that takes longer than
running it: inside a write transaction, that time holds up every other writer (a webhook burst
is all writes). These write what save() would (defaults and auto_now included); the project
connects no save signals, so nothing else is skipped.
"""

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from django.db import connection, models


@lru_cache(maxsize=32)
def _insert_sql(model: type[models.Model], columns: tuple[str, ...], unique: str | None) -> str:
    qn = connection.ops.quote_name
    skip = f" ON CONFLICT ({qn(unique)}) DO NOTHING" if unique else ""
    return "INSERT INTO {} ({}) VALUES ({}){} RETURNING {}".format(  # noqa: S608 - names only
        qn(model._meta.db_table),
        ", ".join(qn(column) for column in columns),
        ", ".join(["%s"] * len(columns)),
        skip,
        qn(model._meta.pk.column),
    )


@lru_cache(maxsize=32)
def _update_sql(model: type[models.Model], columns: tuple[str, ...]) -> str:
    qn = connection.ops.quote_name
    return "UPDATE {} SET {} WHERE {} = %s".format(  # noqa: S608 - names only
        qn(model._meta.db_table),
        ", ".join(f"{qn(column)} = %s" for column in columns),
        qn(model._meta.pk.column),
    )


def insert(obj: models.Model, unless_taken: str | None = None) -> bool:
    """Inserts obj as a new row and sets its primary key, like obj.save(force_insert=True).

    With `unless_taken` (a unique field), a row already holding obj's value there (or one being
    inserted by a transaction that then commits) leaves obj unsaved and returns False. That
    needs no savepoint, unlike catching the IntegrityError inside a transaction.
    """
    fields = [field for field in obj._meta.concrete_fields if not field.primary_key]
    values = [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
    unique = obj._meta.get_field(unless_taken).column if unless_taken else None
    with connection.cursor() as cursor:
        cursor.execute(
            _insert_sql(type(obj), tuple(field.column for field in fields), unique), values
        )
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return True


def update(obj: models.Model, names: Iterable[str]) -> None:
    """Writes the named fields of obj's row, like obj.save(update_fields=names)."""
    fields = [obj._meta.get_field(name) for name in dict.fromkeys(names)]
    values = [field.get_db_prep_save(field.pre_save(obj, False), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(
            _update_sql(type(obj), tuple(field.column for field in fields)), [*values, obj.pk]
        )


Converters = tuple[tuple[Any, tuple[Callable[..., Any], ...]], ...]


@lru_cache(maxsize=32)
def _select(model: type[models.Model], column: str, for_update: bool) -> tuple[str, Converters]:
    """The locking read of one row by `column`, and for each concrete field the converters
    that turn the database's value into the model's (what a queryset applies)."""
    qn = connection.ops.quote_name
    table = model._meta.db_table
    fields = model._meta.concrete_fields
    sql = "SELECT {} FROM {} WHERE {} = %s{}".format(  # noqa: S608 - names only
        ", ".join(qn(field.column) for field in fields),
        qn(table),
        qn(column),
        " FOR UPDATE" if for_update else "",
    )
    converters = []
    for field in fields:
        col = field.get_col(table)
        found = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
        converters.append((col, tuple(found)))
    return sql, tuple(converters)


def get_for_update(model: type[models.Model], field: str, value: object) -> models.Model | None:
    """The row whose unique field has that value, locked until the transaction ends (on
    PostgreSQL; SQLite's write transactions lock the whole database), or None.

    Read with a plain cursor: a raw queryset works out its columns and converters anew on
    every call, which took most of this read's time.
    """
    column = model._meta.get_field(field).column
    sql, converters = _select(model, column, connection.features.has_select_for_update)
    with connection.cursor() as cursor:
        cursor.execute(sql, [value])
        row = cursor.fetchone()
    if row is None:
        return None
    values = []
    for stored, (col, functions) in zip(row, converters, strict=True):
        for convert in functions:
            stored = convert(stored, col, connection)
        values.append(stored)
    return model.from_db(connection.alias, [f.attname for f in model._meta.concrete_fields], values)
