import pytest
from django.core.cache import cache

from attempts.merge import Observation, merge
from attempts.models import Attempt, Source
from fakeseam import API_KEY
from seam import live
from seam.client import SeamNotFound
from testing.proxy import CountingProxy

pytestmark = [pytest.mark.seam]

LIST = "/action_attempts/list"
ERROR = {"type": "device_offline", "message": "The lock is offline"}


@pytest.fixture(scope="module")
def proxy(fake_seam):
    with CountingProxy(fake_seam.url) as proxy:
        yield proxy


@pytest.fixture
def seam(settings, proxy, fake_seam):
    settings.SEAM_API_URL = proxy.url
    settings.SEAM_API_KEY = API_KEY
    settings.SEAM_POLL_SECONDS = 1
    settings.SEAM_CLIENT_OPTIONS = {"max_attempts": 1}
    proxy.reset()
    yield fake_seam
    fake_seam.outage([])


def recorded(action_attempt_id: str, status: str = "pending", source=Source.WEBHOOK) -> Attempt:
    obs = Observation(status=status, action_type="LOCK_DOOR")
    return merge(action_attempt_id, obs, source=source).attempt


def started(fake_seam, status: str = "pending", **payload) -> str:
    action_attempt_id = fake_seam.lock_door()["action_attempt_id"]
    fake_seam.set_attempt(action_attempt_id, status, **payload)
    return action_attempt_id


@pytest.mark.django_db
class TestRefresh:
    def test_it_makes_no_call_without_an_api_key(self, seam, settings, proxy):
        settings.SEAM_API_KEY = ""
        attempt = recorded(started(seam))

        state = live.refresh([attempt])

        assert state.configured is False
        assert proxy.calls == []

    def test_it_fetches_pending_and_unfetched_attempts_in_one_call(self, seam, proxy):
        pending = recorded(started(seam, "success", result={"was_confirmed_by_device": True}))
        ended = recorded(started(seam, "error", error=ERROR), status="error")
        done_id = started(seam, "success", result={})
        live.fetch([done_id])
        done = Attempt.objects.get(action_attempt_id=done_id)
        assert done.payload_fetched
        proxy.reset()

        state = live.refresh([pending, ended, done])

        [call] = proxy.calls_to(LIST)
        assert set(call.body["action_attempt_ids"]) == {
            pending.action_attempt_id,
            ended.action_attempt_id,
        }
        assert state.fetched == 2
        pending.refresh_from_db()
        ended.refresh_from_db()
        assert pending.status == "success"
        assert pending.result == {"was_confirmed_by_device": True}
        assert ended.error == ERROR

    def test_ended_attempts_with_their_payload_are_never_fetched(self, seam, proxy):
        done_id = started(seam, "error", error=ERROR)
        live.fetch([done_id])
        done = Attempt.objects.get(action_attempt_id=done_id)
        proxy.reset()
        cache.delete(live.fresh_key(done_id))

        assert live.refresh([done]).fetched == 0
        assert proxy.calls == []

    def test_fresh_attempts_wait_for_the_interval(self, seam, proxy):
        attempt = recorded(started(seam))

        assert live.refresh([attempt]).fetched == 1
        assert live.refresh([attempt]).fetched == 0
        assert len(proxy.calls_to(LIST)) == 1

        cache.delete(live.fresh_key(attempt.action_attempt_id))  # the interval has passed
        assert live.refresh([attempt]).fetched == 1
        assert len(proxy.calls_to(LIST)) == 2

    def test_what_another_request_ended_meanwhile_is_not_fetched_again(self, seam, proxy):
        attempt = recorded(started(seam, "success", result={}))  # this request read it pending
        live.fetch([attempt.action_attempt_id])  # another one fetched it: ended, with its result
        cache.delete(live.fresh_key(attempt.action_attempt_id))  # and its mark expired since
        proxy.reset()

        assert live.refresh([attempt]).fetched == 0
        assert proxy.calls == []

    def test_only_the_holder_of_the_lock_calls_seam(self, seam, proxy):
        attempt = recorded(started(seam))
        assert cache.add(live.LOCK_KEY, 1, 30)  # another worker is fetching

        assert live.refresh([attempt]).fetched == 0
        assert proxy.calls == []

        cache.delete(live.LOCK_KEY)
        assert live.refresh([attempt]).fetched == 1

    def test_a_failure_backs_off_and_says_since_when(self, seam, proxy):
        attempt = recorded(started(seam))
        seam.outage([LIST])

        state = live.refresh([attempt])

        assert state.stale and state.fetched == 0
        assert "unavailable" in state.error
        assert API_KEY not in state.error
        assert len(proxy.calls_to(LIST)) == 1
        # Backing off: no call at all, however often pages poll.
        for _ in range(5):
            assert live.refresh([attempt]).stale_since == state.stale_since
        assert len(proxy.calls_to(LIST)) == 1

        seam.outage([])
        cache.delete(live.BACKOFF_KEY)  # the back-off interval has passed
        recovered = live.refresh([attempt])
        assert recovered.fetched == 1
        assert not recovered.stale
        assert not live.seam_state().stale

    def test_the_back_off_grows_with_each_failure(self, seam, settings):
        attempt = recorded(started(seam))
        seam.outage([LIST])
        live.refresh([attempt])
        first = cache.get(live.FAILURES_KEY)
        cache.delete(live.BACKOFF_KEY)
        live.refresh([attempt])

        assert (first, cache.get(live.FAILURES_KEY)) == (1, 2)
        assert live.backoff_seconds(1) < live.backoff_seconds(2) < live.backoff_seconds(3)
        assert live.backoff_seconds(50) == live.MAX_BACKOFF_SECONDS == 30

    def test_a_refresh_inside_a_page_makes_one_short_try(self, seam, proxy, settings):
        settings.SEAM_CLIENT_OPTIONS = {"max_attempts": 3, "backoff": 0.01, "max_backoff": 0.01}
        attempt = recorded(started(seam))
        seam.outage([LIST])

        assert live.refresh([attempt]).stale

        assert len(proxy.calls_to(LIST)) == 1  # no retries inside a request


@pytest.mark.django_db
class TestExplicitRequests:
    def failing(self, seam, attempt: Attempt) -> None:
        seam.outage([LIST, "/action_attempts/get"])
        live.refresh([attempt])
        assert live.seam_state().stale and cache.get(live.BACKOFF_KEY)
        seam.outage([])

    def test_tracking_asks_seam_whatever_the_back_off_and_ends_it(self, seam, proxy):
        self.failing(seam, recorded(started(seam)))
        new_id = started(seam, "error", error=ERROR)
        proxy.reset()

        merged = live.track(new_id)

        assert merged.attempt.error == ERROR
        assert len(proxy.calls_to("/action_attempts/get")) == 1
        assert not live.seam_state().stale
        assert cache.get(live.BACKOFF_KEY) is None

    def test_seam_saying_no_such_attempt_ends_the_back_off_too(self, seam):
        self.failing(seam, recorded(started(seam)))

        with pytest.raises(SeamNotFound):
            live.track("action_attempt_never")

        assert not live.seam_state().stale

    def test_an_operators_refresh_asks_seam_whatever_the_back_off(self, seam, proxy):
        attempt = recorded(started(seam, "success", result={}))
        self.failing(seam, attempt)
        proxy.reset()

        state = live.fetch([attempt.action_attempt_id])

        assert state.fetched == 1 and not state.stale
        assert len(proxy.calls_to(LIST)) == 1
        # Everyone's automatic refresh is live again at once.
        other = recorded(started(seam))
        assert live.refresh([other]).fetched == 1
