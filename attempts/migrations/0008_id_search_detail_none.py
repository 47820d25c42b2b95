"""SQLite's id search index rebuilt with detail=none (attempts/search.py): rowids without
positions, which a search of single trigrams never reads, so the index is 2.4 times smaller.
About a minute and a half at ten million attempts. The old code searches the new index as well,
so going back keeps it."""

from django.db import migrations

from attempts.search import SEARCHED, WATERMARKS, sqlite_drop_statements, sqlite_statements


def rebuild(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for table, column in SEARCHED:
        for statement in sqlite_drop_statements(table):
            schema_editor.execute(statement)
        schema_editor.execute(f"DELETE FROM {WATERMARKS} WHERE name = %s", [table])  # noqa: S608
        for statement in sqlite_statements(table, column):
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("attempts", "0007_resolution_error_type")]

    operations = [migrations.RunPython(rebuild, migrations.RunPython.noop, elidable=True)]
