"""Time-to-resolution rollups keyed by error type too, so /insights/ can narrow them by it."""

from django.db import migrations, models
from django.db.models import Sum

from attempts import rollups
from attempts.rebuild import rebuild


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
    rebuild(False, apps.get_model("attempts", "Attempt"), tables)


def collapse(apps, schema_editor):
    """Back to resolutions without error type: each period's rows summed over error types, so
    the key without it is unique again."""
    for name in ("HourlyResolution", "DailyResolution"):
        model = apps.get_model("attempts", name)
        key = ("start", "action_type", "status", "bucket")
        sums = list(model.objects.values(*key).annotate(n=Sum("count")).order_by())
        model.objects.all().delete()
        model.objects.bulk_create(
            (model(**{k: row[k] for k in key}, error_type="", count=row["n"]) for row in sums),
            batch_size=2000,
        )


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
        migrations.RunPython(refill, collapse, elidable=True),
    ]
