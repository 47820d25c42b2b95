from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from attempts.counts import counted
from attempts.merge import Observation, merge
from attempts.models import Attempt, OperatorAction, Source, StatusChange, WebhookEvent
from testing.webhooks import seam_event


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune", *args, stdout=out)
    return out.getvalue()


def aged(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def old_and_new() -> None:
    """An attempt ended 40 days ago with an event and history, and one from today."""
    for aid, days in (("old", 40), ("new", 0)):
        event = WebhookEvent(
            event_id=f"evt_{aid}",
            event_type="action_attempt.lock_door.succeeded",
            payload=seam_event(event_id=f"evt_{aid}", action_attempt_id=aid),
            svix_id=f"msg_{aid}",
        )
        merge(
            aid,
            Observation(status="success", action_type="LOCK_DOOR"),
            source=Source.WEBHOOK,
            event=event,
        )
        Attempt.objects.filter(action_attempt_id=aid).update(first_seen_at=aged(days))
    # The rollups as merge() keeps them: rebuilt for the backdated first_seen_at.
    call_command("rebuild_rollups", "--all", stdout=StringIO())
    WebhookEvent.objects.filter(event_id="evt_old").update(received_at=aged(40))
    StatusChange.objects.filter(attempt__action_attempt_id="old").update(at=aged(40))
    OperatorAction.objects.create(
        user=User.objects.create_user("op"),
        kind=OperatorAction.Kind.REFRESH,
        action_attempt_id="old",
        attempt=Attempt.objects.get(action_attempt_id="old"),
    )


@pytest.mark.django_db
class TestPrune:
    @pytest.mark.parametrize(
        "args,reason",
        [
            (["--event-days", "-1"], "at least 1 day"),
            (["--attempt-days", "0"], "at least 1 day"),
            (["--event-days", "ten"], "whole number"),
            (["--attempt-days", "30", "--batch-size", "0"], "--batch-size"),
        ],
    )
    def test_it_refuses_bad_arguments_before_deleting(self, args, reason):
        old_and_new()
        with pytest.raises(CommandError, match=reason):
            prune(*args)
        assert Attempt.objects.count() == 2 and WebhookEvent.objects.count() == 2

    def test_it_refuses_bad_settings_too(self, settings):
        settings.EVENT_RETENTION_DAYS = "-5"
        with pytest.raises(CommandError, match="EVENT_RETENTION_DAYS must be at least 1"):
            prune()

    def test_it_refuses_a_retention_that_would_delete_pending_attempts(self):
        old_and_new()
        merge("stuck", Observation(status="pending", at=aged(50)), source=Source.WEBHOOK)
        with pytest.raises(CommandError, match="1 pending attempts .* Nothing was deleted"):
            prune("--attempt-days", "30")
        assert Attempt.objects.count() == 3

    def test_by_default_it_keeps_everything(self):
        old_and_new()
        assert "nothing to prune" in prune()
        assert Attempt.objects.count() == 2

    def test_a_dry_run_says_what_would_go(self):
        old_and_new()
        output = prune("--attempt-days", "30", "--event-days", "30", "--dry-run")
        assert "Would delete 1 attempts" in output and "with 1 history rows" in output
        assert "Dry run: nothing was deleted." in output
        assert Attempt.objects.count() == 2 and StatusChange.objects.count() == 2

    def test_it_deletes_old_attempts_with_their_rows_and_keeps_the_rollups(self, settings):
        old_and_new()
        settings.ATTEMPT_RETENTION_DAYS = "30"
        counts_before = sorted(counted({}, datetime.now(UTC)))

        output = prune("--batch-size", "1")

        assert "Deleted 1 attempts" in output
        assert list(Attempt.objects.values_list("action_attempt_id", flat=True)) == ["new"]
        assert list(WebhookEvent.objects.values_list("event_id", flat=True)) == ["evt_new"]
        assert StatusChange.objects.count() == 1
        action = OperatorAction.objects.get()
        assert action.attempt is None and action.action_attempt_id == "old"
        # Trends outlive the attempts, a rebuild included.
        assert sorted(counted({}, datetime.now(UTC))) == counts_before
        call_command("rebuild_rollups", stdout=StringIO())
        assert sorted(counted({}, datetime.now(UTC))) == counts_before

    def test_it_deletes_old_events_and_history_but_keeps_the_attempts(self):
        old_and_new()
        output = prune("--event-days", "30", "--batch-size", "1")
        assert "Deleted 1 history rows and 1 webhook events" in output
        assert Attempt.objects.count() == 2
        assert list(WebhookEvent.objects.values_list("event_id", flat=True)) == ["evt_new"]
