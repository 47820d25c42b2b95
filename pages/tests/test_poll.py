from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.http import QueryDict

from attempts.counts import attempt_stats
from attempts.filters import FILTER_KEYS, AttemptFilterForm
from attempts.merge import Observation, merge
from attempts.models import Attempt, Source
from attempts.recorded import newest_pk
from pages.fragments import stats_version
from pages.templatetags.attempt_tags import version

ERROR = {"type": "device_offline", "message": "The lock is offline"}


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_user("operator"))
    return client


def recorded(action_attempt_id: str, status: str = "pending") -> Attempt:
    obs = Observation(status=status, action_type="LOCK_DOOR")
    return merge(action_attempt_id, obs, source=Source.WEBHOOK).attempt


def poll(client, *attempts: Attempt, seam: str = "off", stats: str | None = None, **extra):
    """A page's poll, as its hidden inputs send it; `stats` defaults to the current counts'."""
    if stats is None:
        stats = current_stats(**{k: v for k, v in extra.items() if k in FILTER_KEYS})
    params = {"v": [f"{a.pk}.{version(a)}" for a in attempts], "seam": seam, "stats": stats}
    return client.get("/attempts/poll/", params | extra, HTTP_HX_REQUEST="true")


def current_stats(**filters) -> str:
    form = AttemptFilterForm(QueryDict(urlencode(filters, doseq=True)))
    assert form.is_valid()
    return stats_version(attempt_stats(form.filters(), form.threshold_minutes()))


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
        assert f'<tr id="attempt-{b.pk}" class="changed" data-status="error"' in body
        assert 'hx-swap-oob="true">' in body
        assert f'id="attempt-{a.pk}"' not in body
        assert "badge error" in body
        b.refresh_from_db()
        assert f'name="v" value="{b.pk}.{version(b)}"' in body

    def test_it_keeps_polling_when_nothing_in_view_is_pending(self, operator):
        a = recorded("aa1")
        merge("aa1", Observation(status="success"), source=Source.WEBHOOK)

        response = poll(operator, a)

        assert response.status_code == 200
        assert f'id="attempt-{a.pk}"' in response.content.decode()

    def test_it_sends_attempts_recorded_since_the_newest_the_page_saw(self, operator):
        shown = recorded("aa1")
        newest = newest_pk()
        first, second = recorded("aa2"), recorded("aa3", "error")

        body = poll(operator, shown, newest=newest).content.decode()

        assert '<tbody hx-swap-oob="afterbegin:#attempt-incoming">' in body
        # Newest first, as the list is ordered.
        assert body.index(f'id="attempt-{second.pk}"') < body.index(f'id="attempt-{first.pk}"')
        assert f'id="attempt-{shown.pk}"' not in body
        assert 'data-count="2"' in body
        assert f'name="newest" value="{second.pk}" hx-swap-oob="true"' in body
        # The next poll, from there, has nothing new.
        assert poll(operator, shown, newest=second.pk).content == b""

    def test_new_attempts_match_the_page_query(self, operator):
        newest = newest_pk()
        lock1, unlock1, lock2 = (
            merge(i, Observation(status=s, action_type=t), source=Source.API).attempt
            for i, s, t in [
                ("lock1", "pending", "LOCK_DOOR"),
                ("unlock1", "error", "UNLOCK_DOOR"),
                ("lock2", "error", "LOCK_DOOR"),
            ]
        )

        def shown(**query) -> set[Attempt]:
            body = poll(operator, newest=newest, **query).content.decode()
            return {a for a in (lock1, unlock1, lock2) if f'id="attempt-{a.pk}"' in body}

        assert shown(action_type="UNLOCK_DOOR") == {unlock1}
        assert shown(status="error") == {unlock1, lock2}
        assert shown(q="unlock") == {unlock1}  # any part of the id, from 3 characters
        assert shown(q="ock2") == {lock2}
        assert shown(action_type="LOCK_DOOR", status="pending") == {lock1}
        assert shown(until="2020-01-01T00:00") == set()
        assert shown(last="1h") == {lock1, unlock1, lock2}

    def test_a_later_page_gets_new_attempts_counted(self, operator):
        newest = newest_pk()
        recorded("aa1")

        body = poll(operator, newest=newest, after="1700000000000000_5").content.decode()

        assert 'data-count="1"' in body

    def test_it_sends_counts_newer_than_the_page_shows(self, operator):
        recorded("aa1")

        stale = poll(operator, stats="an older computation").content.decode()
        current = poll(operator).content

        assert '<section id="stats" class="stats" aria-label="Counts" hx-swap-oob="true">' in stale
        assert current == b""

    @pytest.mark.seam
    def test_a_hidden_tab_asks_seam_nothing_and_skips_the_counts(self, operator, seam, settings):
        action_attempt_id = seam.lock_door()["action_attempt_id"]
        seam.set_attempt(action_attempt_id, "error", error=ERROR)
        a = recorded(action_attempt_id)
        newest = newest_pk()
        b = recorded("aa2", "error")

        body = poll(operator, a, seam="ok", stats="old", newest=newest, hidden="1").content.decode()

        assert f'id="attempt-{b.pk}"' in body  # what is new, from the database
        assert f'id="attempt-{a.pk}"' not in body  # not refreshed from Seam
        assert 'id="stats"' not in body
        assert Attempt.objects.get(pk=a.pk).status == "pending"

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
        "query",
        [
            "v=1",
            "v=x.1",
            "v=1.1&stuck_minutes=0",
            "stuck_minutes=many",
            "v=1.1&" * 101,
            "newest=abc",
            "newest=-1",
            "newest=5&in_flight=1.2.3-9",
            "after=not-a-cursor",
            "before=99_x",
            "since=yesterday",
            "until=2026-13-45",
            "since=2026-02-01&until=2026-01-01",
            "after=1_1&before=2_2",
        ],
    )
    def test_it_rejects_malformed_input(self, operator, query):
        response = operator.get(f"/attempts/poll/?{query}")
        assert response.status_code == 400
        assert response["Content-Type"].startswith("text/html")
        assert len(response.content) > 10

    @pytest.mark.seam
    def test_it_refreshes_the_rows_from_seam(self, operator, seam_settings, fake_seam):
        seam_settings.SEAM_POLL_SECONDS = 1
        action_attempt_id = fake_seam.lock_door()["action_attempt_id"]
        fake_seam.set_attempt(action_attempt_id, "error", error=ERROR)
        a = recorded(action_attempt_id)

        response = poll(operator, a, seam="ok")

        assert response.status_code == 200
        body = response.content.decode()
        assert "device_offline" in body and "The lock is offline" in body
        assert 'id="seam-status"' not in body  # unchanged: Seam answered

    @pytest.mark.seam
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
    def test_every_page_polls_once_per_interval_pending_or_not(self, operator, settings):
        settings.SEAM_POLL_SECONDS = 4
        recorded("aa1", "success")
        recorded("aa2", "error")

        body = operator.get("/attempts/?action_type=LOCK_DOOR").content.decode()

        assert body.count("data-poll") == 1
        assert 'data-interval="4"' in body
        assert 'hx-get="/attempts/poll/?action_type=LOCK_DOOR" hx-trigger="poll"' in body
        assert body.count('data-live name="v"') == 2
        assert f'data-live name="newest" value="{newest_pk()}"' in body

    def test_a_later_page_says_so(self, operator):
        a = recorded("aa1")
        cursor = f"{version(a) + 10**9}_{a.pk + 1}"

        body = operator.get(f"/attempts/?status=pending&after={cursor}").content.decode()

        assert "data-later" in body
        # Its "N new attempts" link leads to the newest page, with the same filters.
        assert '<a id="new-attempts" class="button" href="/attempts/?status=pending"' in body

    @pytest.mark.seam
    def test_a_page_fetches_payloads_missing_from_ended_rows_at_once(
        self, operator, seam_settings, fake_seam
    ):
        action_attempt_id = fake_seam.lock_door()["action_attempt_id"]
        fake_seam.set_attempt(action_attempt_id, "error", error=ERROR)
        a = recorded(action_attempt_id, "error")

        body = operator.get("/attempts/").content.decode()
        response = poll(operator, a, seam="ok")

        assert "data-poll-now" in body
        assert "The lock is offline" in response.content.decode()

    def test_without_seam_a_page_does_not_poll_at_once(self, operator):
        recorded("aa1", "error")

        assert "data-poll-now" not in operator.get("/attempts/").content.decode()
