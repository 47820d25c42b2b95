from django.db import migrations, models


class Migration(migrations.Migration):
    """Attempts Seam no longer has. Nullable columns without a default: SQLite and PostgreSQL
    add them without rewriting the table; the partial index holds no row until one is marked."""
    dependencies = [
        ("attempts", "0010_history_index_once"),
    ]

    operations = [
        migrations.AddField(
            model_name="attempt",
            name="missing_count",
            field=models.IntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="attempt",
            name="missing_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="attempt",
            name="not_found_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="attempt",
            index=models.Index(
                condition=models.Q(("not_found_at__isnull", False)),
                fields=["-first_seen_at", "-id"],
                name="attempt_not_found_newest_idx",
            ),
        ),
    ]
