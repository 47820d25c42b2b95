"""Any part of an id, fast at ten million rows: a trigram index per searchable id column.

SQLite: an FTS5 table with the trigram tokenizer beside the table. It is filled in batches, not
row by row in the writer's transaction (that would add a third to a webhook's write): it
indexes the rows up to a watermark, and a search also scans the few rows after it, by primary
key, with instr(). Once that tail passes CATCH_UP_AFTER rows, a search first indexes a batch
of it. (SQLite serializes writers and AUTOINCREMENT never reuses an id, so no row can appear
below the watermark.) The search text is one quoted FTS5 string, so FTS5's query syntax
(quotes, *, -, ^, NEAR, OR) is just text.
PostgreSQL: a pg_trgm GIN index, which LIKE uses; Django escapes LIKE's % and _ in `contains`.
Both are made by migration 0004.
"""

from django.db import connection, models, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL

# Shorter text has no trigram: it is matched as a beginning instead.
MIN_CONTAINS = 3
CATCH_UP_AFTER = 5000
# Up to this many matches are read first and looked up by primary key (see contains()).
FEW_MATCHES = 5000
# Rows indexed per catch-up: its write transaction stays well under a second, so webhooks
# waiting for SQLite's write lock are not held up.
CATCH_UP_ROWS = 20_000

# (table, column) of each id that can be searched by any part.
SEARCHED = [("attempts_attempt", "action_attempt_id"), ("attempts_webhookevent", "event_id")]
WATERMARKS = "attempts_id_search_watermark"


def fts_table(table: str) -> str:
    return f"{table}_id_search"


def contains(model: type[models.Model], field: str, text: str) -> Q:
    """The rows whose `field` contains `text` (of MIN_CONTAINS characters or more)."""
    found = _contains(model, field, text)
    # Few matches (the common case: a pasted piece of an id) are handed over as their keys.
    # Given the search itself, the database would rather walk the list's index in order and
    # test every row against it: seconds at ten million rows.
    keys = list(model.objects.filter(found).values_list("pk", flat=True)[: FEW_MATCHES + 1])
    return Q(pk__in=keys) if len(keys) <= FEW_MATCHES else found


def _contains(model: type[models.Model], field: str, text: str) -> Q:
    if connection.vendor != "sqlite":
        return Q(**{f"{field}__contains": text})
    table = model._meta.db_table
    column = model._meta.get_field(field).column
    indexed = watermark(table)
    if last_id(table) - indexed > CATCH_UP_AFTER:
        indexed = catch_up(table, column)
    search = fts_table(table)
    sql = (
        f"SELECT rowid FROM {search} WHERE {search} MATCH %s "  # noqa: S608 - names only
        f"UNION ALL SELECT id FROM {table} WHERE id > %s AND instr({column}, %s) > 0"
    )
    phrase = '"' + text.replace('"', '""') + '"'
    return Q(pk__in=RawSQL(sql, [phrase, indexed, text]))  # noqa: S611 - text is a parameter


def watermark(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT indexed_up_to FROM {WATERMARKS} WHERE name = %s", [table])  # noqa: S608
        return cursor.fetchone()[0]


def last_id(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608 - names only
        return cursor.fetchone()[0]


def catch_up(table: str, column: str) -> int:
    """Indexes up to CATCH_UP_ROWS rows after the watermark (SQLite); returns the new one."""
    search = fts_table(table)
    with transaction.atomic(), connection.cursor() as cursor:
        indexed = watermark(table)
        top = min(last_id(table), indexed + CATCH_UP_ROWS)
        cursor.execute(
            f"INSERT INTO {search}(rowid, {column}) "  # noqa: S608 - names only
            f"SELECT id, {column} FROM {table} WHERE id > %s AND id <= %s",
            [indexed, top],
        )
        cursor.execute(f"UPDATE {WATERMARKS} SET indexed_up_to = %s WHERE name = %s", [top, table])  # noqa: S608
    return top


def catch_up_all() -> None:
    """Indexes every row not indexed yet (SQLite), a batch at a time."""
    if connection.vendor == "sqlite":
        for table, column in SEARCHED:
            while catch_up(table, column) < last_id(table):
                pass


def sqlite_statements(table: str, column: str) -> list[str]:
    search = fts_table(table)
    indexed = f"(SELECT indexed_up_to FROM {WATERMARKS} WHERE name = '{table}')"  # noqa: S608
    forget = (
        f"INSERT INTO {search}({search}, rowid, {column}) VALUES ('delete', old.id, old.{column})"  # noqa: S608 - names only
    )
    remember = f"INSERT INTO {search}(rowid, {column}) VALUES (new.id, new.{column})"  # noqa: S608
    return [
        f"CREATE VIRTUAL TABLE {search} USING fts5({column}, content='{table}', "
        "content_rowid='id', tokenize='trigram case_sensitive 1')",
        f"INSERT INTO {search}({search}) VALUES ('rebuild')",  # noqa: S608 - names only
        f"INSERT INTO {WATERMARKS} (name, indexed_up_to) "  # noqa: S608 - names only
        f"SELECT '{table}', COALESCE(MAX(id), 0) FROM {table}",
        # Only indexed rows are in the index: deleting another would corrupt it.
        f"CREATE TRIGGER {search}_delete AFTER DELETE ON {table} WHEN old.id <= {indexed} "
        f"BEGIN {forget}; END",
        f"CREATE TRIGGER {search}_update AFTER UPDATE OF {column} ON {table} "
        f"WHEN old.id <= {indexed} BEGIN {forget}; {remember}; END",
    ]


def sqlite_drop_statements(table: str) -> list[str]:
    search = fts_table(table)
    return [
        *(f"DROP TRIGGER IF EXISTS {search}_{when}" for when in ("delete", "update")),
        f"DROP TABLE IF EXISTS {search}",
    ]


def postgres_index(table: str, column: str) -> str:
    return f"{table}_{column}_trgm"
