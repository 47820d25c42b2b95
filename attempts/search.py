"""Any part of an id, fast at ten million rows: a trigram index per searchable id column.

SQLite: an FTS5 table with the trigram tokenizer beside the table, kept by triggers; the search
text is one quoted FTS5 string, so its query syntax (quotes, *, -, ^, NEAR, OR) is just text.
PostgreSQL: a pg_trgm GIN index, which LIKE uses; Django escapes LIKE's % and _ in `contains`.
Both indexes are made by migration 0004; `SEARCHED` lists them.
"""

from django.db import connection, models
from django.db.models import Q
from django.db.models.expressions import RawSQL

# Shorter text has no trigram: it is matched as a beginning instead.
MIN_CONTAINS = 3

# (table, column) of each id that can be searched by any part.
SEARCHED = [("attempts_attempt", "action_attempt_id"), ("attempts_webhookevent", "event_id")]


def fts_table(table: str) -> str:
    return f"{table}_id_search"


def contains(model: type[models.Model], field: str, text: str) -> Q:
    """The rows whose `field` contains `text` (of MIN_CONTAINS characters or more)."""
    if connection.vendor != "sqlite":
        return Q(**{f"{field}__contains": text})
    search = connection.ops.quote_name(fts_table(model._meta.db_table))
    phrase = '"' + text.replace('"', '""') + '"'
    sql = f"SELECT rowid FROM {search} WHERE {search} MATCH %s"  # noqa: S608 - names only
    rowids = RawSQL(sql, [phrase])  # noqa: S611 - the text is a parameter
    return Q(pk__in=rowids)


def sqlite_statements(table: str, column: str) -> list[str]:
    search = fts_table(table)
    forget = (
        f"INSERT INTO {search}({search}, rowid, {column}) VALUES ('delete', old.id, old.{column})"  # noqa: S608 - names only
    )
    remember = f"INSERT INTO {search}(rowid, {column}) VALUES (new.id, new.{column})"  # noqa: S608
    return [
        f"CREATE VIRTUAL TABLE {search} USING fts5({column}, content='{table}', "
        "content_rowid='id', tokenize='trigram case_sensitive 1')",
        f"INSERT INTO {search}({search}) VALUES ('rebuild')",  # noqa: S608 - names only
        f"CREATE TRIGGER {search}_insert AFTER INSERT ON {table} BEGIN {remember}; END",
        f"CREATE TRIGGER {search}_delete AFTER DELETE ON {table} BEGIN {forget}; END",
        f"CREATE TRIGGER {search}_update AFTER UPDATE OF {column} ON {table} "
        f"BEGIN {forget}; {remember}; END",
    ]


def sqlite_drop_statements(table: str) -> list[str]:
    search = fts_table(table)
    return [
        *(f"DROP TRIGGER IF EXISTS {search}_{when}" for when in ("insert", "delete", "update")),
        f"DROP TABLE IF EXISTS {search}",
    ]


def postgres_index(table: str, column: str) -> str:
    return f"{table}_{column}_trgm"
