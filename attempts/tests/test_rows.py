from datetime import UTC, datetime

import pytest

from attempts import rows
from attempts.models import Attempt, WebhookEvent

ENDED_AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest.mark.django_db
class TestRows:
    def test_insert_writes_what_save_would(self):
        attempt = Attempt(
            action_attempt_id="aa1",
            status="error",
            error={"type": "device_offline", "message": "ünïcode"},
            ended_at=ENDED_AT,
            payload_fetched=True,
        )

        rows.insert(attempt)

        stored = Attempt.objects.get()
        assert stored.pk == attempt.pk
        assert (stored.status, stored.error, stored.result) == ("error", attempt.error, None)
        assert (stored.ended_at, stored.payload_fetched) == (ENDED_AT, True)
        assert stored.first_seen_at == attempt.first_seen_at
        assert stored.updated_at is not None

    def test_insert_unless_taken_leaves_a_taken_value_alone(self):
        first = Attempt(action_attempt_id="aa1", status="success")
        second = Attempt(action_attempt_id="aa1", status="error")

        assert rows.insert(first, unless_taken="action_attempt_id") is True
        assert rows.insert(second, unless_taken="action_attempt_id") is False

        assert second.pk is None and second._state.adding
        assert list(Attempt.objects.values_list("pk", "status")) == [(first.pk, "success")]

    def test_update_writes_only_the_named_fields(self):
        attempt = Attempt.objects.create(action_attempt_id="aa1")
        updated_at = attempt.updated_at
        attempt.status = "success"
        attempt.result = {"was_confirmed_by_device": False}
        attempt.action_type = "not written"

        rows.update(attempt, ["status", "result", "updated_at"])

        stored = Attempt.objects.get()
        assert (stored.status, stored.result) == ("success", {"was_confirmed_by_device": False})
        assert stored.action_type == ""
        assert stored.updated_at > updated_at

    def test_get_for_update_loads_the_row_or_none(self):
        attempt = Attempt.objects.create(action_attempt_id="aa1", ended_at=ENDED_AT)
        WebhookEvent.objects.create(event_id="e1", event_type="x", payload=[1], attempt=attempt)

        loaded = rows.get_for_update(Attempt, "action_attempt_id", "aa1")
        event = rows.get_for_update(WebhookEvent, "event_id", "e1")

        assert (loaded.pk, loaded.ended_at, loaded.payload_fetched) == (attempt.pk, ENDED_AT, False)
        assert (event.payload, event.attempt_id, event.known_type) == ([1], attempt.pk, True)
        assert rows.get_for_update(Attempt, "action_attempt_id", "aa2") is None
