import pytest
from django.contrib.auth.models import User

from attempts.merge import Observation, merge
from attempts.models import Attempt, Source
from attempts.templatetags.attempt_tags import version

ERROR = {"type": "device_offline", "message": "The lock is offline"}


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_user("operator"))
    return client


def recorded(action_attempt_id: str, status: str = "pending") -> Attempt:
    obs = Observation(status=status, action_type="LOCK_DOOR")
    return merge(action_attempt_id, obs, source=Source.WEBHOOK).attempt


def poll(client, *attempts: Attempt, seam: str = "off", **extra):
    params = {"v": [f"{a.pk}.{version(a)}" for a in attempts], "seam": seam, **extra}
    return client.get("/attempts/poll/", params, HTTP_HX_REQUEST="true")


@pytest.mark.django_db
class TestPoll:
    def test_it_needs_a_login(self, client):
        assert client.get("/attempts/poll/").status_code == 302

    def test_a_page_whose_session_expired_goes_to_the_login(self, client):
        response = client.get(
            "/attempts/poll/",
            HTTP_HX_REQUEST="true",
            HTTP_HX_CURRENT_URL="http://testserver/attempts/?status=pending",
        )

        assert response["HX-Redirect"] == "/accounts/login/?next=%2Fattempts%2F%3Fstatus%3Dpending"

    def test_it_answers_empty_while_nothing_changed(self, operator):
        a, b = recorded("aa1"), recorded("aa2")

        response = poll(operator, a, b)

        assert response.status_code == 200
        assert response.content == b""

    def test_it_sends_only_the_changed_rows_out_of_band(self, operator):
        a, b = recorded("aa1"), recorded("aa2")
        merge("aa2", Observation(status="error"), source=Source.WEBHOOK)

        response = poll(operator, a, b)

        assert response.status_code == 200  # aa1 is still pending: keep polling
        body = response.content.decode()
        assert f'<tr id="attempt-{b.pk}" class="changed" hx-swap-oob="true">' in body
        assert f'id="attempt-{a.pk}"' not in body
        assert "badge error" in body
        b.refresh_from_db()
        assert f'name="v" value="{b.pk}.{version(b)}"' in body

    def test_it_stops_polling_when_nothing_in_view_is_pending(self, operator):
        a = recorded("aa1")
        merge("aa1", Observation(status="success"), source=Source.WEBHOOK)

        response = poll(operator, a)

        assert response.status_code == 286
        body = response.content.decode()
        assert f'id="attempt-{a.pk}"' in body
        assert '<p id="poller" class="live" hx-swap-oob="true">' in body

    def test_it_marks_stuck_rows(self, operator, settings):
        a = recorded("aa1")
        Attempt.objects.filter(pk=a.pk).update(
            first_seen_at=a.first_seen_at.replace(year=a.first_seen_at.year - 1)
        )
        merge(
            "aa1", Observation(status="pending", action_type="UNLOCK_DOOR"), source=Source.WEBHOOK
        )

        body = poll(operator, a, stuck_minutes=5).content.decode()

        assert 'class="changed stuck"' in body and "badge stuck" in body

    @pytest.mark.parametrize(
        "query", ["v=1", "v=x.1", "v=1.1&stuck_minutes=0", "stuck_minutes=many", "v=1.1&" * 101]
    )
    def test_it_rejects_malformed_input(self, operator, query):
        response = operator.get(f"/attempts/poll/?{query}")
        assert response.status_code == 400
        assert response.content

    def test_it_refreshes_the_rows_from_seam(self, operator, seam_settings, fake_seam):
        seam_settings.SEAM_POLL_SECONDS = 1
        action_attempt_id = fake_seam.lock_door()["action_attempt_id"]
        fake_seam.set_attempt(action_attempt_id, "error", error=ERROR)
        a = recorded(action_attempt_id)

        response = poll(operator, a, seam="ok")

        assert response.status_code == 286
        body = response.content.decode()
        assert "device_offline" in body and "The lock is offline" in body
        assert 'id="seam-status"' not in body  # unchanged: Seam answered

    def test_it_says_when_seam_stops_answering(self, operator, seam_settings, fake_seam):
        seam_settings.SEAM_CLIENT_OPTIONS = {"max_attempts": 1}
        a = recorded("aa1")
        fake_seam.outage(["/action_attempts/list"])
        try:
            response = poll(operator, a, seam="ok")
        finally:
            fake_seam.outage([])

        assert response.status_code == 200
        body = response.content.decode()
        assert '<div id="seam-status" hx-swap-oob="true">' in body
        assert "may be stale since" in body
        assert 'name="seam" value="stale"' in body


@pytest.mark.django_db
class TestListPolling:
    def test_a_page_with_a_pending_row_polls_once_per_interval(self, operator, settings):
        settings.SEAM_POLL_SECONDS = 4
        recorded("aa1")
        recorded("aa2", "success")

        body = operator.get("/attempts/").content.decode()

        assert body.count("data-poll") == 1
        assert 'hx-get="/attempts/poll/" hx-trigger="every 4s" hx-include="[data-live]"' in body
        assert body.count('data-live name="v"') == 2

    def test_a_page_with_nothing_pending_does_not_poll(self, operator):
        recorded("aa1", "error")

        body = operator.get("/attempts/").content.decode()

        assert "data-poll" not in body
        assert "/attempts/poll/" not in body

    def test_a_filter_change_that_shows_a_pending_row_resumes_polling(self, operator):
        recorded("aa1", "error")
        recorded("aa2", "pending")
        htmx = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "results"}

        ended = operator.get("/attempts/?status=error", **htmx).content.decode()
        pending = operator.get("/attempts/?status=pending", **htmx).content.decode()

        assert "/attempts/poll/" not in ended
        assert "/attempts/poll/" in pending

    def test_a_page_fetches_payloads_missing_from_ended_rows_once(
        self, operator, seam_settings, fake_seam
    ):
        action_attempt_id = fake_seam.lock_door()["action_attempt_id"]
        fake_seam.set_attempt(action_attempt_id, "error", error=ERROR)
        a = recorded(action_attempt_id, "error")

        body = operator.get("/attempts/").content.decode()
        response = poll(operator, a, seam="ok")

        assert 'hx-get="/attempts/poll/" hx-trigger="load"' in body
        assert "data-poll" not in body
        assert response.status_code == 286
        assert "The lock is offline" in response.content.decode()

    def test_without_seam_a_page_does_not_ask_for_missing_payloads(self, operator):
        recorded("aa1", "error")

        assert "/attempts/poll/" not in operator.get("/attempts/").content.decode()
