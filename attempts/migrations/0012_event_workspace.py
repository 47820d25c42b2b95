from django.db import migrations, models

BATCH = 5000
INDEX = "event_workspace_newest_idx"
TABLE = "attempts_webhookevent"


def add_column(apps, schema_editor):
    # NOT NULL with a constant default is one ALTER on both databases: Django's own AddField
    # would remake the whole table on SQLite.
    schema_editor.execute(
        f"ALTER TABLE {TABLE} ADD COLUMN workspace_id varchar(255) NOT NULL DEFAULT ''"
    )


def drop_column(apps, schema_editor):
    schema_editor.execute(f"ALTER TABLE {TABLE} DROP COLUMN workspace_id")


def fill(apps, schema_editor):
    """Each event's workspace from its payload, a batch of ids per transaction: webhooks keep
    landing between two batches."""
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        value = "payload->>'workspace_id'"
        is_text = "jsonb_typeof(payload->'workspace_id') = 'string'"
    else:
        value = "json_extract(payload, '$.workspace_id')"
        is_text = "json_type(payload, '$.workspace_id') = 'text'"
    update = (
        f"UPDATE {TABLE} SET workspace_id = {value} "  # noqa: S608 - no input
        f"WHERE id > %s AND id <= %s AND {is_text} AND length({value}) <= 255"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}")  # noqa: S608
        (last,) = cursor.fetchone()
    for start in range(0, last, BATCH):
        with connection.cursor() as cursor:
            cursor.execute(update, [start, start + BATCH])


def add_index(apps, schema_editor):
    # CONCURRENTLY lets PostgreSQL take webhooks while it reads the table.
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        f'CREATE INDEX {concurrently}IF NOT EXISTS "{INDEX}" ON "{TABLE}" '
        '("workspace_id", "received_at" DESC, "id" DESC) '
        # As Django writes the condition: SQLite uses a partial index only for a query whose
        # WHERE has the same term.
        "WHERE NOT (\"workspace_id\" = '')"
    )


def drop_index(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    """Every event belongs to its payload's workspace. A column added, filled in batches and
    indexed, so that at millions of events no table is rewritten and webhooks keep landing."""

    atomic = False

    dependencies = [
        ("attempts", "0011_not_found_on_seam"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="webhookevent",
                    name="workspace_id",
                    field=models.CharField(blank=True, default="", max_length=255),
                ),
                migrations.AddIndex(
                    model_name="webhookevent",
                    index=models.Index(
                        condition=models.Q(("workspace_id", ""), _negated=True),
                        fields=["workspace_id", "-received_at", "-id"],
                        name=INDEX,
                    ),
                ),
            ],
            database_operations=[
                migrations.RunPython(add_column, drop_column),
                migrations.RunPython(fill, migrations.RunPython.noop),
                migrations.RunPython(add_index, drop_index),
            ],
        ),
    ]
