"""One-row reads and writes with their SQL built once, for the webhook's write path.

Model.save() builds its statement anew on every call, and on SQLite that takes longer than
running it: inside a write transaction, that time holds up every other writer (a webhook burst
is all writes). These write what save() would (defaults and auto_now included); the project
connects no save signals, so nothing else is skipped.
"""

from collections.abc import Iterable
from functools import lru_cache

from django.db import connection, models


@lru_cache(maxsize=32)
def _insert_sql(model: type[models.Model], columns: tuple[str, ...]) -> str:
    qn = connection.ops.quote_name
    return "INSERT INTO {} ({}) VALUES ({}) RETURNING {}".format(  # noqa: S608 - names only
        qn(model._meta.db_table),
        ", ".join(qn(column) for column in columns),
        ", ".join(["%s"] * len(columns)),
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


def insert(obj: models.Model) -> None:
    """Inserts obj as a new row and sets its primary key, like obj.save(force_insert=True)."""
    fields = [field for field in obj._meta.concrete_fields if not field.primary_key]
    values = [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(type(obj), tuple(field.column for field in fields)), values)
        obj.pk = cursor.fetchone()[0]
    obj._state.adding = False
    obj._state.db = connection.alias


def update(obj: models.Model, names: Iterable[str]) -> None:
    """Writes the named fields of obj's row, like obj.save(update_fields=names)."""
    fields = [obj._meta.get_field(name) for name in dict.fromkeys(names)]
    values = [field.get_db_prep_save(field.pre_save(obj, False), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(
            _update_sql(type(obj), tuple(field.column for field in fields)), [*values, obj.pk]
        )


@lru_cache(maxsize=32)
def _select_sql(model: type[models.Model], column: str, for_update: bool) -> str:
    qn = connection.ops.quote_name
    return "SELECT * FROM {} WHERE {} = %s{}".format(  # noqa: S608 - names only
        qn(model._meta.db_table), qn(column), " FOR UPDATE" if for_update else ""
    )


def get_for_update(model: type[models.Model], field: str, value: object) -> models.Model | None:
    """The row whose unique field has that value, locked until the transaction ends (on
    PostgreSQL; SQLite's write transactions lock the whole database), or None."""
    column = model._meta.get_field(field).column
    sql = _select_sql(model, column, connection.features.has_select_for_update)
    return next(iter(model.objects.raw(sql, [value])), None)
