import pytest

from accounts.access import Role
from alerts.evaluation import evaluate
from alerts.models import Incident
from alerts.tests.test_check_alerts import ended
from attempts.models import Status
from testing.receivers import JsonReceiver
from testing.users import logged_in


@pytest.fixture
def incident(db) -> Incident:
    ended("LOCK_DOOR", Status.ERROR, 10)
    evaluate()
    return Incident.objects.get()


def acknowledge(client, incident: Incident):
    return client.post(f"/alerts/{incident.pk}/acknowledge/", follow=True)


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ADMIN])
def test_an_operator_acknowledges_an_open_incident(client, incident, role):
    logged_in(client, role, username="alice")

    page = acknowledge(client, incident).content.decode()

    incident.refresh_from_db()
    assert incident.acknowledged_by == client.user and incident.acknowledged_at is not None
    assert "Acknowledged: Error rate: LOCK_DOOR." in page
    assert f"by alice at {incident.acknowledged_at:%Y-%m-%d %H:%M} UTC" in page


def test_it_answers_a_viewer_403_and_changes_nothing(client, incident):
    logged_in(client, Role.VIEWER)

    response = client.post(f"/alerts/{incident.pk}/acknowledge/")

    assert response.status_code == 403
    assert "Only operators and admins may acknowledge an incident." in response.content.decode()
    incident.refresh_from_db()
    assert incident.acknowledged_at is None and incident.acknowledged_by is None


def test_only_operators_see_the_button(client, incident):
    button = f'action="/alerts/{incident.pk}/acknowledge/"'
    logged_in(client, Role.VIEWER)
    page = client.get("/alerts/").content.decode()
    assert "LOCK_DOOR" in page and button not in page
    logged_in(client, Role.OPERATOR)
    assert button in client.get("/alerts/").content.decode()


def test_the_first_acknowledgement_stands(client, incident):
    logged_in(client, Role.OPERATOR, username="alice")
    acknowledge(client, incident)
    first = Incident.objects.get().acknowledged_at
    logged_in(client, Role.OPERATOR, username="bob")

    page = acknowledge(client, incident).content.decode()

    incident.refresh_from_db()
    assert (incident.acknowledged_by.username, incident.acknowledged_at) == ("alice", first)
    assert "Already acknowledged by alice at" in page


def test_a_resolved_incident_is_not_acknowledged(client, incident):
    ended("LOCK_DOOR", Status.SUCCESS, 90)
    evaluate()
    logged_in(client, Role.OPERATOR)

    page = acknowledge(client, incident).content.decode()

    assert "was resolved before anyone acknowledged it" in page
    assert Incident.objects.get().acknowledged_at is None


def test_an_unknown_incident_is_404(client, db):
    logged_in(client, Role.OPERATOR)
    assert client.post("/alerts/999999/acknowledge/").status_code == 404


def test_it_rejects_get(client, incident):
    logged_in(client, Role.OPERATOR)
    assert client.get(f"/alerts/{incident.pk}/acknowledge/").status_code == 405


def test_the_resolution_notice_says_who_acknowledged_it(client, settings, db):
    with JsonReceiver() as hook:
        settings.ALERT_URLS = [hook.apprise_url]
        ended("LOCK_DOOR", Status.ERROR, 10)
        evaluate()
        assert "Acknowledged" not in hook.received[0]["message"]
        logged_in(client, Role.OPERATOR, username="alice")
        acknowledge(client, Incident.objects.get())
        ended("LOCK_DOOR", Status.SUCCESS, 90)

        evaluate()

        acknowledged_at = Incident.objects.get().acknowledged_at
        assert hook.received[1]["title"].startswith("[RESOLVED]")
        assert (
            f"Acknowledged by: alice at {acknowledged_at:%Y-%m-%d %H:%M} UTC"
            in hook.received[1]["message"]
        )
