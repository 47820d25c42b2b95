import subprocess
import tempfile

import pytest

from alerts.evaluation import evaluate
from alerts.tests.test_check_alerts import ended
from attempts.models import Status

TOKEN = "metrics-test-token"


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client, token: str = TOKEN):
    return client.get("/metrics", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.django_db
def test_it_answers_404_without_metrics_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert scrape(client, "").status_code == 404


@pytest.mark.django_db
def test_it_answers_401_for_a_missing_or_wrong_token(client, token):
    assert client.get("/metrics").status_code == 401
    assert scrape(client, "wrong").status_code == 401
    assert client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 401


@pytest.mark.django_db
def test_it_rejects_post(client, token):
    assert client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


@pytest.mark.django_db
@pytest.mark.prometheus
def test_it_exports_the_contract_names_clean_for_promtool(client, token):
    ended("LOCK_DOOR", Status.ERROR, 10)
    ended("UNLOCK_DOOR", Status.SUCCESS, 4)
    evaluate()
    response = scrape(client)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    assert 'seam_dashboard_attempts{action_type="LOCK_DOOR",status="error"} 10.0' in text
    assert 'seam_dashboard_attempts{action_type="UNLOCK_DOOR",status="success"} 4.0' in text
    assert "seam_dashboard_attempts_stuck 0.0" in text
    assert 'seam_dashboard_incidents_open{rule="Error rate"} 1.0' in text
    assert 'seam_dashboard_incidents_open{rule="Stuck attempts"} 0.0' in text
    assert 'seam_dashboard_webhook_deliveries_total{outcome="rejected"}' in text
    assert "# TYPE seam_dashboard_seam_requests_total counter" in text
    assert "# TYPE seam_dashboard_seam_request_duration_seconds histogram" in text
    with tempfile.NamedTemporaryFile() as out:
        out.write(response.content)
        out.flush()
        with open(out.name, "rb") as given:
            lint = subprocess.run(
                ["promtool", "check", "metrics"], stdin=given, capture_output=True, text=True
            )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert lint.stdout.strip() == "" and lint.stderr.strip() == ""


@pytest.mark.django_db
@pytest.mark.seam
def test_it_counts_seam_requests(client, token, seam):
    from seam.client import get_client

    get_client().list(["aa_none"])
    text = scrape(client).content.decode()
    assert 'seam_dashboard_seam_requests_total{endpoint="/action_attempts/list",outcome=' in text
    assert (
        'seam_dashboard_seam_request_duration_seconds_count{endpoint="/action_attempts/list"}'
        in (text)
    )
