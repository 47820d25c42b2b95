import pytest

from accounts.access import Role
from attempts.merge import Observation, merge
from attempts.models import Attempt, OperatorAction, Source, WebhookEvent
from fakeseam import API_KEY
from pages.templatetags.attempt_tags import version
from testing.proxy import CountingProxy
from testing.users import logged_in

ERROR = {"type": "device_offline", "message": "The lock is offline"}


@pytest.fixture
def operator(client):
    return logged_in(client, Role.OPERATOR)


@pytest.fixture
def viewer(client):
    return logged_in(client, Role.VIEWER)


@pytest.fixture
def seam(seam_settings, fake_seam):
    seam_settings.SEAM_CLIENT_OPTIONS = {"max_attempts": 1}
    seam_settings.SEAM_POLL_SECONDS = 1
    yield fake_seam
    fake_seam.outage([])


@pytest.fixture
def counted(seam, seam_settings, fake_seam):
    """Every call the dashboard makes to Seam, through a counting proxy."""
    with CountingProxy(fake_seam.url) as proxy:
        seam_settings.SEAM_API_URL = proxy.url
        yield proxy


def started(fake_seam, status: str, **payload) -> str:
    action_attempt_id = fake_seam.lock_door()["action_attempt_id"]
    fake_seam.set_attempt(action_attempt_id, status, **payload)
    return action_attempt_id


@pytest.mark.django_db
class TestAttemptDetail:
    def test_it_sends_anonymous_users_to_login(self, client):
        response = client.get("/attempts/aa1/")
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")

    def test_it_shows_an_error_with_its_history_and_events(self, operator):
        event = WebhookEvent.objects.create(
            event_id="ev1", event_type="action_attempt.lock_door.failed", payload={}
        )
        merge("aa1", Observation(status="pending", action_type="LOCK_DOOR"), source=Source.WEBHOOK)
        merge("aa1", Observation(status="error"), source=Source.WEBHOOK, event=event)
        event.attempt = Attempt.objects.get(action_attempt_id="aa1")
        event.save()
        merge(
            "aa1",
            Observation(status="error", has_payload=True, error={**ERROR, "details": {"n": 1}}),
            source=Source.API,
        )

        response = operator.get("/attempts/aa1/")

        assert response.status_code == 200
        body = response.content.decode()
        assert '<div class="problem-box">' in body
        assert "device_offline" in body and "The lock is offline" in body
        assert "&quot;details&quot;: {\n    &quot;n&quot;: 1\n  }" in body
        assert 'data-copy="error-json"' in body
        assert "LOCK_DOOR" in body and "Time to resolution" in body
        assert [(c.to_status, c.source) for c in response.context["history"]] == [
            ("pending", "webhook"),
            ("error", "webhook"),
        ]
        assert "Webhook</td>" in body
        assert "action_attempt.lock_door.failed" in body
        assert 'href="/events/?q=aa1"' in body
        assert "hx-trigger" not in body  # ended: nothing to poll

    def test_a_pending_attempt_refreshes_live(self, operator, settings):
        settings.SEAM_POLL_SECONDS = 2
        merge("aa1", Observation(status="pending"), source=Source.WEBHOOK)

        body = operator.get("/attempts/aa1/").content.decode()

        assert 'data-poll data-interval="2"' in body and 'hx-trigger="poll"' in body

    def test_its_poll_answers_nothing_until_the_attempt_changes(self, operator):
        attempt = merge("aa1", Observation(status="pending"), source=Source.WEBHOOK).attempt
        page = operator.get("/attempts/aa1/").content.decode()
        htmx = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "detail"}
        stamp = f"{version(attempt)}.1.0"

        assert f'hx-vals=\'{{"v": "{stamp}"}}\'' in page
        unchanged = operator.get("/attempts/aa1/", {"v": stamp}, **htmx)
        event = WebhookEvent.objects.create(
            event_id="ev1", event_type="action_attempt.lock_door.failed", payload={}
        )
        merge("aa1", Observation(status="error"), source=Source.WEBHOOK, event=event)
        WebhookEvent.objects.filter(pk=event.pk).update(attempt=attempt)
        ended = operator.get("/attempts/aa1/", {"v": stamp}, **htmx)

        assert unchanged.status_code == 204
        # Ended, but its error is still to fetch: the page keeps polling, and shows the new
        # status-history row and event.
        assert ended.status_code == 200
        body = ended.content.decode()
        assert body.startswith('<section id="detail"') and "badge error" in body
        assert "action_attempt.lock_door.failed" in body
        assert body.count('<td class="when">') == 3  # two history rows, one event

    def test_its_poll_stops_once_the_attempt_can_no_longer_change(self, operator):
        attempt = merge("aa1", Observation(status="pending"), source=Source.WEBHOOK).attempt
        htmx = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "detail"}
        merge("aa1", Observation("success", has_payload=True, result={}), source=Source.API)

        ended = operator.get("/attempts/aa1/", {"v": f"{version(attempt)}.1.0"}, **htmx)

        assert ended.status_code == 286
        assert "data-poll" not in ended.content.decode()

    @pytest.mark.seam
    @pytest.mark.parametrize("role", list(Role))
    def test_an_id_never_recorded_is_fetched_as_the_systems_read(self, client, seam, role):
        """A link from a chat or a ticket: whoever opens it, the fetch is the system's, and
        nothing is recorded in the name of whoever sent or opened it."""
        action_attempt_id = started(seam, "error", error=ERROR)
        logged_in(client, role)

        response = client.get(f"/attempts/{action_attempt_id}/")

        assert response.status_code == 200
        assert action_attempt_id in response.content.decode()
        attempt = Attempt.objects.get(action_attempt_id=action_attempt_id)
        assert (attempt.status, attempt.error, attempt.payload_fetched) == ("error", ERROR, True)
        [change] = attempt.history.all()
        assert change.source == Source.API
        assert not OperatorAction.objects.exists()

    @pytest.mark.seam
    def test_it_is_404_when_seam_has_no_such_attempt(self, operator, seam):
        response = operator.get("/attempts/no_such_attempt/")

        assert response.status_code == 404
        assert b"Seam has no attempt with this id" in response.content
        assert not Attempt.objects.exists()

    def test_it_is_404_with_a_reason_without_an_api_key(self, operator, settings):
        settings.SEAM_API_KEY = ""
        response = operator.get("/attempts/aa1/")

        assert response.status_code == 404
        assert b"no SEAM_API_KEY" in response.content

    @pytest.mark.seam
    def test_it_says_so_when_seam_is_down(self, operator, seam):
        seam.outage(["/action_attempts/get"])

        response = operator.get("/attempts/action_attempt_down/")

        assert response.status_code == 503
        assert b"unavailable" in response.content
        assert API_KEY.encode() not in response.content

    @pytest.mark.seam
    def test_opening_an_ended_attempt_fetches_its_missing_payload(self, operator, seam):
        action_attempt_id = started(seam, "error", error=ERROR)
        merge(action_attempt_id, Observation(status="error"), source=Source.WEBHOOK)

        body = operator.get(f"/attempts/{action_attempt_id}/").content.decode()

        assert "The lock is offline" in body
        assert Attempt.objects.get(action_attempt_id=action_attempt_id).payload_fetched


@pytest.mark.django_db
class TestTrack:
    def test_it_rejects_get(self, operator):
        assert operator.get("/attempts/track/").status_code == 405

    def test_it_rejects_a_missing_id(self, operator):
        response = operator.post("/attempts/track/", {"action_attempt_id": "  "})
        assert response.status_code == 400
        assert b"Paste an action attempt id" in response.content

    @pytest.mark.seam
    def test_it_tracks_and_goes_to_the_attempt(self, operator, seam):
        action_attempt_id = started(seam, "pending")

        response = operator.post(
            "/attempts/track/", {"action_attempt_id": f" {action_attempt_id} "}
        )

        assert response.status_code == 302
        assert response["Location"] == f"/attempts/{action_attempt_id}/"
        attempt = Attempt.objects.get(action_attempt_id=action_attempt_id)
        assert attempt.status == "pending"
        track = OperatorAction.objects.get()
        assert (track.kind, track.user, track.attempt) == ("track", operator.user, attempt)

    @pytest.mark.seam
    def test_it_answers_a_viewer_403_and_asks_seam_nothing(self, viewer, seam, counted):
        action_attempt_id = started(seam, "pending")

        response = viewer.post("/attempts/track/", {"action_attempt_id": action_attempt_id})

        assert response.status_code == 403
        assert "Only operators and admins may track an attempt." in response.content.decode()
        assert counted.calls == []
        assert not Attempt.objects.exists() and not OperatorAction.objects.exists()

    def test_a_recorded_id_just_goes_to_its_page(self, operator):
        merge("aa1", Observation(status="pending"), source=Source.WEBHOOK)

        response = operator.post("/attempts/track/", {"action_attempt_id": "aa1"})

        assert response["Location"] == "/attempts/aa1/"
        assert not OperatorAction.objects.exists()

    def test_the_list_has_the_track_box(self, operator):
        body = operator.get("/attempts/").content.decode()
        assert 'action="/attempts/track/"' in body and 'name="action_attempt_id"' in body

    def test_a_viewers_list_has_no_track_box(self, viewer):
        body = viewer.get("/attempts/").content.decode()
        assert "Action attempts" in body and 'action="/attempts/track/"' not in body


@pytest.mark.django_db
class TestRefresh:
    def test_it_rejects_get(self, operator):
        merge("aa1", Observation(status="pending"), source=Source.WEBHOOK)
        assert operator.get("/attempts/aa1/refresh/").status_code == 405

    @pytest.mark.seam
    def test_it_is_404_for_an_unknown_attempt(self, operator, seam):
        assert operator.post("/attempts/nope/refresh/").status_code == 404

    @pytest.mark.seam
    def test_it_asks_seam_now_and_records_who_asked(self, operator, seam):
        action_attempt_id = started(seam, "pending")
        operator.get(f"/attempts/{action_attempt_id}/")  # fetched: fresh for the interval
        seam.set_attempt(action_attempt_id, "error", error=ERROR)

        response = operator.post(f"/attempts/{action_attempt_id}/refresh/", follow=True)

        attempt = Attempt.objects.get(action_attempt_id=action_attempt_id)
        assert (attempt.status, attempt.error) == ("error", ERROR)
        assert b"Refreshed from Seam" in response.content
        refresh = OperatorAction.objects.get(kind="refresh")
        assert (refresh.user, refresh.attempt) == (operator.user, attempt)

    @pytest.mark.parametrize("role", [Role.OPERATOR, Role.ADMIN])
    @pytest.mark.seam
    def test_operators_and_admins_may_refresh(self, client, seam, role):
        action_attempt_id = started(seam, "pending")
        merge(action_attempt_id, Observation(status="pending"), source=Source.WEBHOOK)
        logged_in(client, role)

        response = client.post(f"/attempts/{action_attempt_id}/refresh/")

        assert response.status_code == 302
        assert OperatorAction.objects.get().user == client.user

    @pytest.mark.seam
    def test_it_answers_a_viewer_403_and_asks_seam_nothing(self, viewer, seam, counted):
        action_attempt_id = started(seam, "pending")
        merge(action_attempt_id, Observation(status="pending"), source=Source.WEBHOOK)

        response = viewer.post(f"/attempts/{action_attempt_id}/refresh/")

        assert response.status_code == 403
        body = response.content.decode()
        assert "Only operators and admins may refresh attempts from Seam." in body
        assert "a viewer" in body
        assert counted.calls == [] and not OperatorAction.objects.exists()

    def test_a_viewers_page_has_no_refresh_button(self, viewer):
        merge("aa1", Observation(status="pending"), source=Source.WEBHOOK)
        body = viewer.get("/attempts/aa1/").content.decode()
        assert "aa1" in body and "Refresh from Seam" not in body

    def test_an_operators_page_has_the_refresh_button(self, operator):
        merge("aa1", Observation(status="pending"), source=Source.WEBHOOK)
        body = operator.get("/attempts/aa1/").content.decode()
        assert 'action="/attempts/aa1/refresh/"' in body and "Refresh from Seam" in body

    @pytest.mark.seam
    def test_it_says_when_seam_did_not_answer(self, operator, seam):
        action_attempt_id = started(seam, "pending")
        operator.get(f"/attempts/{action_attempt_id}/")
        seam.outage(["/action_attempts/list"])

        response = operator.post(f"/attempts/{action_attempt_id}/refresh/", follow=True)

        assert b"Seam did not answer" in response.content
        assert b"may be stale since" in response.content
