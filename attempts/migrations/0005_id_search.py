"""Trigram indexes for any part of an attempt id or event id (see attempts/search.py).

On PostgreSQL the pg_trgm extension is created when the role may (a superuser, or the
database's owner on PostgreSQL 13+, where pg_trgm is trusted). Otherwise the migration says so
and goes on: the search still works, without the index, until an administrator creates the
extension and the two indexes (the README gives the SQL).
"""

import logging

from django.db import DatabaseError, migrations, transaction

from attempts.search import (
    SEARCHED,
    WATERMARKS,
    postgres_index,
    sqlite_drop_statements,
    sqlite_statements,
)

log = logging.getLogger(__name__)


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        schema_editor.execute(
            f"CREATE TABLE {WATERMARKS} (name TEXT PRIMARY KEY, indexed_up_to INTEGER NOT NULL)"
        )
        for table, column in SEARCHED:
            for statement in sqlite_statements(table, column):
                schema_editor.execute(statement)
        return
    if vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as e:
        log.warning(
            "pg_trgm is not installed and this role may not install it (%s): searching by any "
            "part of an id works, slowly. Have a superuser create the extension and the "
            "indexes: the README's 'Searching by any part of an id' gives the SQL.",
            str(e).strip(),
        )
        return
    for table, column in SEARCHED:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {postgres_index(table, column)} "
            f"ON {table} USING gin ({column} gin_trgm_ops)"
        )


def drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table, column in SEARCHED:
        if vendor == "sqlite":
            for statement in sqlite_drop_statements(table):
                schema_editor.execute(statement)
        elif vendor == "postgresql":
            schema_editor.execute(f"DROP INDEX IF EXISTS {postgres_index(table, column)}")
    if vendor == "sqlite":
        schema_editor.execute(f"DROP TABLE IF EXISTS {WATERMARKS}")


class Migration(migrations.Migration):
    dependencies = [("attempts", "0004_error_type_rollups")]

    operations = [migrations.RunPython(create, drop)]
