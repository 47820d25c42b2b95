import pytest
from django.core.checks import run_checks

from alerts.evaluation import evaluate
from alerts.tests.test_check_alerts import ended
from attempts.models import Status


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_user("operator", password="unused-password-1")
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_alerts_page_needs_a_login(client):
    response = client.get("/alerts/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_it_lists_open_incidents_first_then_the_resolved(operator):
    ended("LOCK_DOOR", Status.ERROR, 10)
    ended("UNLOCK_DOOR", Status.ERROR, 10)
    evaluate()
    ended("UNLOCK_DOOR", Status.SUCCESS, 90)
    evaluate()
    page = operator.get("/alerts/").content.decode()
    open_part, resolved_part = page.split("Resolved in the last")
    assert "LOCK_DOOR" in open_part and "UNLOCK_DOOR" not in open_part
    assert "UNLOCK_DOOR" in resolved_part
    assert 'href="/attempts/?action_type=LOCK_DOOR&amp;status=error&amp;last=1h"' in open_part
    assert "10 of 10 LOCK_DOOR attempts ended in error" in open_part


@pytest.mark.django_db
def test_a_banner_shows_on_attempts_and_events_while_an_incident_is_open(operator):
    assert "open incident" not in operator.get("/attempts/").content.decode()
    ended("LOCK_DOOR", Status.ERROR, 10)
    evaluate()
    for path in ("/attempts/", "/events/"):
        page = operator.get(path).content.decode()
        assert "1 open incident:" in page and "Error rate (LOCK_DOOR)" in page
    ended("LOCK_DOOR", Status.SUCCESS, 90)
    evaluate()
    assert "open incident" not in operator.get("/attempts/").content.decode()


def test_a_malformed_alert_url_fails_the_system_check(settings):
    settings.ALERT_URLS = ["json://127.0.0.1:9/hook", "nosuchservice://tok3n-value@host"]
    errors = run_checks(tags=["alerts"])
    assert [e.id for e in errors] == ["alerts.E001"]
    assert "ALERT_URLS entry 2 (nosuchservice://…)" in errors[0].msg
    assert "tok3n-value" not in errors[0].msg


def test_the_error_rate_and_dashboard_url_are_checked(settings):
    settings.ALERT_ERROR_RATE = 120
    settings.DASHBOARD_URL = "ops.example.com"
    assert [e.id for e in run_checks(tags=["alerts"])] == ["alerts.E002", "alerts.E003"]


@pytest.mark.gunicorn
def test_gunicorn_refuses_to_start_with_a_malformed_alert_url():
    from testing.servers import Gunicorn

    server = Gunicorn(env={"ALERT_URLS": "nosuchservice://tok3n-value@host"}, workers=1)
    with pytest.raises(RuntimeError) as refused:
        server.start()
    assert "alerts.E001" in str(refused.value)
    assert "tok3n-value" not in server.output()


@pytest.mark.django_db
def test_the_banner_names_a_few_and_counts_up_to_twenty(operator):
    from alerts.models import Incident, Kind, Rule

    rule = Rule.objects.get(kind=Kind.ERROR_RATE)
    Incident.objects.bulk_create(
        Incident(rule=rule, scope=f"TYPE_{i}", figure=50, threshold=25, summary="-", link="/")
        for i in range(21)
    )
    page = operator.get("/attempts/").content.decode()
    assert "20+ open incidents:" in page and ", …." in page
    assert page.count("Error rate (TYPE_") == 5
