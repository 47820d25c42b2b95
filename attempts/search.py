"""Any part of an id, fast at ten million rows: a trigram index per searchable id column.

SQLite: an FTS5 table with the trigram tokenizer beside the table. It is filled in batches, not
row by row in the writer's transaction (that would add a third to a webhook's write): it
indexes the rows up to a watermark, and a search also scans the few rows after it, by primary
key, with instr(). Once that tail passes CATCH_UP_AFTER rows, a search first indexes a batch
of it. (SQLite serializes writers and AUTOINCREMENT never reuses an id, so no row can appear
below the watermark.) The index finds the rows holding a few trigrams of the text (see
trigrams()), each a quoted FTS5 string, so FTS5's query syntax (quotes, *, -, ^, NEAR, OR)
is just text; instr() then keeps those holding the whole text.
PostgreSQL: a pg_trgm GIN index, which LIKE uses for the same few trigrams, then strpos();
Django escapes LIKE's % and _ in `contains`.
Both are made by migration 0004.
"""

from functools import lru_cache

from django.db import connection, models, transaction
from django.db.models import Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import StrIndex
from django.db.models.lookups import GreaterThan

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
    table = model._meta.db_table
    newest, moment = last_id_and_moment(table)
    if connection.vendor == "sqlite" and newest - watermark(table) > CATCH_UP_AFTER:
        catch_up(table, model._meta.get_field(field).column)
    keys = matching_keys(connection.alias, model, field, text, newest, moment)
    return Q(pk__in=keys) if keys is not None else _contains(model, field, text)


# Ids never change, so the same rows match as long as no row was added: the list, its counts
# and its stuck figure ask for the same search in one request and pay for it once. On SQLite no
# row can appear below the newest one, so the newest one says which rows there are. On
# PostgreSQL a row can commit below it (keys are handed out before commit), so the answer is
# kept for one snapshot of the database (`moment`): the same snapshot, the same rows. (A row
# deleted since is simply not found by its key.)
@lru_cache(maxsize=256)
def matching_keys(
    alias: str, model: type[models.Model], field: str, text: str, newest: int, moment: str
) -> tuple[int, ...] | None:
    """The keys of the rows that contain `text`, when there are few (the common case: a pasted
    piece of an id); None for more. Given the search itself, the database would rather walk the
    list's index in order and test every row against it: seconds at ten million rows."""
    found = _contains(model, field, text)
    keys = tuple(model.objects.filter(found).values_list("pk", flat=True)[: FEW_MATCHES + 1])
    return keys if len(keys) <= FEW_MATCHES else None


# Trigrams holding a dash are in most UUIDs ("-4" is the version): an index read of one costs
# a hundred of any other, and finds nothing.
COMMON = "-"
PICKED = 3


def trigrams(text: str) -> list[str]:
    """At most PICKED trigrams of `text`, without a dash where it has such, spread from its
    first to its last: together they cover most of the text, so only a handful of candidates
    is left to compare whole (two trigrams of an 8-character piece leave hundreds at ten
    million ids, each a row to read)."""
    every = [text[i : i + 3] for i in range(len(text) - 2)]
    rare = [i for i, t in enumerate(every) if COMMON not in t] or list(range(len(every)))
    if len(rare) <= PICKED:
        return [every[i] for i in rare]
    spread = (round(k * (len(rare) - 1) / (PICKED - 1)) for k in range(PICKED))
    return [every[rare[k]] for k in dict.fromkeys(spread)]


def _contains(model: type[models.Model], field: str, text: str) -> Q:
    if connection.vendor != "sqlite":
        # The GIN index reads the picked trigrams alone; strpos() keeps the rows holding the
        # whole text (given the whole text to LIKE, PostgreSQL would read all its trigrams).
        found = Q(GreaterThan(StrIndex(field, Value(text)), 0))
        for trigram in trigrams(text):
            found &= Q(**{f"{field}__contains": trigram})
        return found
    table = model._meta.db_table
    column = model._meta.get_field(field).column
    indexed = watermark(table)
    search = fts_table(table)
    # The rows holding all the picked trigrams, then only those holding the whole text.
    sql = (
        f"SELECT id FROM {table} WHERE id IN "  # noqa: S608 - names only
        f"(SELECT rowid FROM {search} WHERE {search} MATCH %s) AND instr({column}, %s) > 0 "
        f"UNION ALL SELECT id FROM {table} WHERE id > %s AND instr({column}, %s) > 0"
    )
    terms = " AND ".join('"' + t.replace('"', '""') + '"' for t in trigrams(text))
    return Q(pk__in=RawSQL(sql, [terms, text, indexed, text]))  # noqa: S611 - text is a parameter


def watermark(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT indexed_up_to FROM {WATERMARKS} WHERE name = %s", [table])  # noqa: S608
        return cursor.fetchone()[0]


def last_id(table: str) -> int:
    return last_id_and_moment(table)[0]


def last_id_and_moment(table: str) -> tuple[int, str]:
    """The newest key of the table and, on PostgreSQL, the snapshot it was read in (its xmin,
    xmax and running transactions: which commits it sees)."""
    moment = ", pg_current_snapshot()::text" if connection.vendor == "postgresql" else ", ''"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0){moment} FROM {table}")  # noqa: S608
        return cursor.fetchone()


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
        # detail=none: rowids only, no positions, as a search asks for single trigrams only;
        # the index is 2.4 times smaller, so more of it stays in memory.
        "content_rowid='id', tokenize='trigram case_sensitive 1', detail=none)",
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
