from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.evaluation import evaluate
from alerts.models import Incident, Kind, Rule
from alerts.tests.test_check_alerts import ended
from attempts.models import Attempt, Status
from fakeseam import free_port
from seam import live
from seam.ingest import record_event


def only(kind: str, **fields) -> Rule:
    Rule.objects.exclude(kind=kind).update(enabled=False)
    rule = Rule.objects.get(kind=kind)
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.full_clean()
    rule.save()
    return rule


@pytest.mark.django_db
def test_error_rate_opens_one_incident_per_action_type():
    only(Kind.ERROR_RATE)
    ended("LOCK_DOOR", Status.ERROR, 10)
    ended("UNLOCK_DOOR", Status.ERROR, 5)
    ended("UNLOCK_DOOR", Status.SUCCESS, 5)
    ended("SET_HVAC_MODE", Status.SUCCESS, 10)
    evaluate()
    assert dict(Incident.objects.values_list("scope", "figure")) == {
        "LOCK_DOOR": 100.0,
        "UNLOCK_DOOR": 50.0,
    }


@pytest.mark.django_db
def test_error_rate_for_one_named_type():
    only(Kind.ERROR_RATE, action_type="UNLOCK_DOOR", threshold=50, min_ended=4)
    ended("LOCK_DOOR", Status.ERROR, 10)
    ended("UNLOCK_DOOR", Status.ERROR, 2)
    ended("UNLOCK_DOOR", Status.SUCCESS, 2)
    evaluate()
    assert list(Incident.objects.values_list("scope", flat=True)) == ["UNLOCK_DOOR"]


@pytest.mark.django_db
def test_error_type_opens_one_incident_per_listed_type():
    only(Kind.ERROR_TYPE, enabled=True, error_types="lock_jammed, low_battery")
    ended("LOCK_DOOR", Status.ERROR, 2)  # lock_jammed
    Attempt.objects.create(
        action_attempt_id="aa_other",
        action_type="LOCK_DOOR",
        status=Status.ERROR,
        ended_at=timezone.now(),
        error={"type": "device_offline", "message": "offline"},
        error_type="device_offline",
    )
    evaluate()
    incident = Incident.objects.get()
    assert (incident.scope, incident.figure) == ("lock_jammed", 2)


@pytest.mark.django_db
def test_stuck_counts_attempts_pending_longer_than_its_minutes():
    only(Kind.STUCK, minutes=15)
    now = timezone.now()
    Attempt.objects.create(action_attempt_id="aa_new", first_seen_at=now - timedelta(minutes=5))
    evaluate()
    assert not Incident.objects.exists()
    Attempt.objects.create(action_attempt_id="aa_old", first_seen_at=now - timedelta(minutes=20))
    evaluate()
    incident = Incident.objects.get(resolved_at__isnull=True)
    assert incident.figure == 1
    assert incident.link == "/attempts/?status=pending&stuck_minutes=15"
    Attempt.objects.filter(action_attempt_id="aa_old").update(status=Status.SUCCESS, ended_at=now)
    assert evaluate().resolved == 1


@pytest.mark.django_db
def test_stuck_leaves_out_attempts_not_found_on_seam():
    only(Kind.STUCK, minutes=15)
    now = timezone.now()
    Attempt.objects.create(
        action_attempt_id="aa_gone", first_seen_at=now - timedelta(hours=2), not_found_at=now
    )
    Attempt.objects.create(action_attempt_id="aa_old", first_seen_at=now - timedelta(minutes=20))
    evaluate()
    assert Incident.objects.get(resolved_at__isnull=True).figure == 1
    Attempt.objects.filter(action_attempt_id="aa_old").update(not_found_at=now)
    assert evaluate().resolved == 1


@pytest.mark.django_db
def test_webhooks_missed_counts_events_recorded_from_the_event_list_only():
    only(Kind.WEBHOOKS_MISSED)
    event = {
        "event_type": "action_attempt.lock_door.succeeded",
        "action_attempt_id": "aa_1",
        "action_type": "LOCK_DOOR",
    }
    record_event({**event, "event_id": "evt_webhook"}, svix_id="msg_1")
    evaluate()
    assert not Incident.objects.exists()
    record_event({**event, "event_id": "evt_listed"})  # as sync_attempts records it
    evaluate()
    assert Incident.objects.get().figure == 1


@pytest.mark.django_db
def test_seam_unreachable_after_its_minutes_of_failures(settings):
    only(Kind.SEAM_UNREACHABLE, minutes=5)
    settings.SEAM_API_KEY = "seam_test_key"
    settings.SEAM_API_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens
    settings.SEAM_CLIENT_OPTIONS = {"max_attempts": 1, "max_total": 1}
    Attempt.objects.create(action_attempt_id="aa_1")
    assert live.fetch(["aa_1"]).stale
    evaluate()
    assert not Incident.objects.exists()
    evaluate(now=timezone.now() + timedelta(minutes=6))
    incident = Incident.objects.get()
    assert incident.figure >= 6
    assert "seam_test_key" not in incident.summary


@pytest.mark.django_db
def test_a_disabled_rule_resolves_its_open_incidents():
    rule = only(Kind.ERROR_RATE)
    ended("LOCK_DOOR", Status.ERROR, 10)
    evaluate()
    rule.enabled = False
    rule.save()
    assert evaluate().resolved == 1
