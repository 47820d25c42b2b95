import django.db.models.deletion
from django.db import migrations, models

INDEX = "attempts_statuschange_attempt_id_a4caea7f"


class Migration(migrations.Migration):
    """Drops the history's own index on attempt_id: statuschange_attempt_at_idx starts with it.

    Only the index goes: the migration Django writes for db_index=False remakes the table on
    SQLite and revalidates the foreign key on PostgreSQL, each a pass over every history row.
    """

    dependencies = [
        ("attempts", "0009_errtype_index_errors_only"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="statuschange",
                    name="attempt",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="history",
                        to="attempts.attempt",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{INDEX}"',
                    f'CREATE INDEX "{INDEX}" ON "attempts_statuschange" ("attempt_id")',
                ),
            ],
        ),
    ]
