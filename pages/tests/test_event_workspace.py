"""Every event belongs to its payload's workspace: recorded, filtered, exported, and filled in for
the events recorded before by migration 0012, a batch at a time."""

import csv
import io
import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from attempts.models import WebhookEvent
from pages.tests.test_events import event, event_ids
from seam.ingest import record_event

BEFORE, AFTER = ("attempts", "0011_not_found_on_seam"), ("attempts", "0012_event_workspace")


@pytest.mark.django_db
class TestEventWorkspace:
    def test_an_event_is_recorded_under_its_payloads_workspace(self):
        record_event(event(1, workspace_id="ws_2"))
        record_event(event(2, workspace_id=["not", "a", "string"]))
        assert dict(WebhookEvent.objects.values_list("event_id", "workspace_id")) == {
            "evt_1": "ws_2",
            "evt_2": "",
        }

    def test_the_events_page_filters_by_workspace(self, admin_client):
        for n, workspace_id in enumerate(["ws_1", "ws_2", "ws_1", "ws_3"]):
            record_event(event(n, workspace_id=workspace_id))
        response = admin_client.get("/events/?workspace=ws_1&workspace=ws_3")
        assert response.status_code == 200
        assert event_ids(response.content.decode()) == ["evt_3", "evt_2", "evt_0"]
        assert 'name="workspace" value="ws_2"' in admin_client.get("/events/").content.decode()

    def test_a_workspace_never_recorded_lists_nothing(self, admin_client):
        record_event(event(1))
        response = admin_client.get("/events/?workspace=ws_unknown")
        assert response.status_code == 200
        assert event_ids(response.content.decode()) == []

    def test_the_export_ends_with_the_workspace(self, admin_client):
        record_event(event(1, workspace_id="ws_2"))
        response = admin_client.get("/events/export.csv?workspace=ws_2")
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert rows[0][-1] == "workspace_id"
        assert [row[-1] for row in rows[1:]] == ["ws_2"]


def migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def columns() -> list[str]:
    with connection.cursor() as cursor:
        description = connection.introspection.get_table_description(
            cursor, "attempts_webhookevent"
        )
    return [column.name for column in description]


@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_in_batches_and_goes_back(monkeypatch):
    migration = __import__("attempts.migrations.0012_event_workspace", fromlist=["BATCH"])
    monkeypatch.setattr(migration, "BATCH", 2)  # several batches from five rows
    migrate(BEFORE)
    try:
        assert "workspace_id" not in columns()
        payloads = [event(n, workspace_id=f"ws_{n % 2}") for n in range(4)]
        payloads.append(event(4, workspace_id="w" * 256))  # too long for the column: left empty
        with connection.cursor() as cursor:
            for payload in payloads:
                cursor.execute(
                    "INSERT INTO attempts_webhookevent (event_id, event_type, payload, svix_id,"
                    " received_at, known_type) VALUES (%s, %s, %s, '', %s, %s)",
                    [
                        payload["event_id"],
                        payload["event_type"],
                        json.dumps(payload),
                        "2026-11-20 10:00:00+00:00",
                        True,
                    ],
                )
        migrate(AFTER)
        with connection.cursor() as cursor:
            cursor.execute("SELECT event_id, workspace_id FROM attempts_webhookevent")
            assert dict(cursor.fetchall()) == {
                "evt_0": "ws_0",
                "evt_1": "ws_1",
                "evt_2": "ws_0",
                "evt_3": "ws_1",
                "evt_4": "",
            }
        migrate(BEFORE)
        assert "workspace_id" not in columns()
    finally:
        migrate(AFTER)
        MigrationExecutor(connection).loader.build_graph()
