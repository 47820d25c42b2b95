"""Time-to-resolution rollups keyed by error type too, so /insights/ can narrow them by it."""

from django.db import migrations, models

from attempts import rollups


def refill(apps, schema_editor):
    """The rollups recounted from the attempts, the resolutions now by error type too. Periods
    before the oldest attempt (pruned) keep their rows, their resolutions under no error type:
    nothing is left to split them by."""
    tables = rollups.Tables(
        *(
            apps.get_model("attempts", name)
            for name in ("HourlyCount", "DailyCount", "HourlyResolution", "DailyResolution")
        )
    )
    rollups.rebuild(False, apps.get_model("attempts", "Attempt"), tables)


class Migration(migrations.Migration):
    dependencies = [
        ("attempts", "0006_newest_idx_covers_counts"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="dailyresolution", name="dailyresolution_key"),
        migrations.RemoveConstraint(model_name="hourlyresolution", name="hourlyresolution_key"),
        migrations.AddField(
            model_name="dailyresolution",
            name="error_type",
            field=models.CharField(blank=True, default="", max_length=100),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="hourlyresolution",
            name="error_type",
            field=models.CharField(blank=True, default="", max_length=100),
            preserve_default=False,
        ),
        migrations.AddConstraint(
            model_name="dailyresolution",
            constraint=models.UniqueConstraint(
                fields=("start", "action_type", "status", "error_type", "bucket"),
                name="dailyresolution_key",
            ),
        ),
        migrations.AddConstraint(
            model_name="hourlyresolution",
            constraint=models.UniqueConstraint(
                fields=("start", "action_type", "status", "error_type", "bucket"),
                name="hourlyresolution_key",
            ),
        ),
        migrations.RunPython(refill, migrations.RunPython.noop, elidable=True),
    ]
