import csv
import importlib
import io

import pytest
from django.apps import apps

from attempts.merge import Observation, error_type_of, merge
from attempts.models import Attempt, DailyResolution, HourlyCount, HourlyResolution, Source


def failed(aid: str, error_type, action_type: str = "LOCK_DOOR") -> None:
    error = {"type": error_type, "message": "m"} if error_type is not None else None
    merge(
        aid,
        Observation(status="error", action_type=action_type, has_payload=True, error=error),
        source=Source.API,
    )


@pytest.mark.django_db
class TestErrorType:
    def test_merge_fills_it_in_from_the_error(self):
        failed("a", "device_offline")
        failed("b", None)
        merge("c", Observation(status="success"), source=Source.WEBHOOK)
        assert dict(Attempt.objects.values_list("action_attempt_id", "error_type")) == {
            "a": "device_offline",
            "b": "",
            "c": "",
        }
        assert error_type_of({"type": 5}) == "" and error_type_of(["x"]) == ""
        assert error_type_of({"type": "x" * 300}) == "x" * 100

    def test_the_list_its_counts_and_the_export_filter_by_it(self, admin_client):
        failed("a1", "device_offline")
        failed("a2", "lock_jammed", "UNLOCK_DOOR")
        failed("a3", "hub_disconnected")
        merge("ok", Observation(status="success"), source=Source.WEBHOOK)
        url = "/attempts/?error_type=device_offline&error_type=lock_jammed"

        response = admin_client.get(url)

        assert sorted(a.action_attempt_id for a in response.context["page"].rows) == ["a1", "a2"]
        assert response.context["stats"]["total"] == 2
        assert response.context["stats"]["errors"] == 2
        body = response.content.decode()
        assert 'name="error_type" value="device_offline" checked' in body
        assert 'name="error_type" value="hub_disconnected">' in body
        export = admin_client.get(url.replace("/attempts/", "/attempts/export.csv"))
        rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
        column = rows[0].index("error_type")
        assert sorted(r[column] for r in rows[1:]) == ["device_offline", "lock_jammed"]

    def test_the_migration_fills_existing_rows_and_the_rollups(self):
        failed("a1", "device_offline")
        Attempt.objects.update(error_type="")
        HourlyCount.objects.all().delete()

        migration = importlib.import_module("attempts.migrations.0004_error_type_rollups")
        migration.fill(apps, None)

        assert Attempt.objects.get().error_type == "device_offline"
        assert list(HourlyCount.objects.values_list("status", "error_type", "count")) == [
            ("error", "device_offline", 1)
        ]

    def test_the_resolution_migration_refills_them_by_error_type(self):
        failed("a1", "device_offline")
        pruned = HourlyResolution.objects.create(
            start=Attempt.objects.get().first_seen_at.replace(year=2020, minute=0, second=0),
            action_type="LOCK_DOOR",
            status="error",
            bucket=3,
            count=7,
        )
        HourlyResolution.objects.exclude(pk=pruned.pk).update(error_type="")

        migration = importlib.import_module("attempts.migrations.0007_resolution_error_type")
        migration.refill(apps, None)

        # Rows counted down to nothing stay, at zero, as merge() leaves them.
        rows = HourlyResolution.objects.exclude(count=0).values_list(
            "status", "error_type", "count"
        )
        assert sorted(rows) == [("error", "", 7), ("error", "device_offline", 1)]
        daily = DailyResolution.objects.exclude(count=0).values_list("error_type", "count")
        assert list(daily) == [("device_offline", 1)]
