"""No page waits on Seam: with a Seam that accepts connections and never answers, page views and
polls answer 200 within 2.5 s, and an operator's explicit request says within ~10 s that Seam
did not answer."""

import logging
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest

from accounts.access import Role
from attempts.merge import Observation, merge
from attempts.models import Attempt, Source
from attempts.recorded import newest_pk
from fakeseam import API_KEY
from pages.templatetags.attempt_tags import version
from testing.users import logged_in

pytestmark = [pytest.mark.slow]

log = logging.getLogger(__name__)
PAGE_BOUND = 2.5
EXPLICIT_BOUND = 10.5


class HungSeam:
    """Accepts every connection, reads the request, and never answers; counts the requests."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[str] = []
        self.held: list[socket.socket] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self.hold, args=(conn,), daemon=True).start()

    def hold(self, conn: socket.socket) -> None:
        with self.lock:
            self.held.append(conn)
        conn.settimeout(0.2)
        seen = b""
        while not self.stopped.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            seen += data
            # One line per request on this connection (keep-alive may bring several).
            while b"\r\n\r\n" in seen:
                head, _, seen = seen.partition(b"\r\n\r\n")
                with self.lock:
                    self.requests.append(head.split(b"\r\n", 1)[0].decode())

    def calls(self, path: str = "") -> int:
        with self.lock:
            return sum(path in line for line in self.requests)

    def __enter__(self) -> "HungSeam":
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture
def hung_seam(settings) -> Iterator[HungSeam]:
    with HungSeam() as seam:
        settings.SEAM_API_URL = seam.url
        settings.SEAM_API_KEY = API_KEY
        settings.SEAM_POLL_SECONDS = 1
        settings.SEAM_CLIENT_OPTIONS = {}  # the client as deployed: its retries and bounds
        yield seam


@pytest.fixture
def operator(client):
    return logged_in(client, Role.OPERATOR)


def pending(action_attempt_id: str) -> Attempt:
    obs = Observation(status="pending", action_type="LOCK_DOOR")
    return merge(action_attempt_id, obs, source=Source.WEBHOOK).attempt


def timed(call) -> tuple[float, object]:
    started = time.monotonic()
    response = call()
    return time.monotonic() - started, response


@pytest.mark.django_db
def test_pages_and_polls_answer_within_2_5_s(operator, hung_seam):
    attempts = [pending(f"aa_{n}") for n in range(3)]
    newest = newest_pk()
    htmx = {"HTTP_HX_REQUEST": "true"}
    requests = {
        "list": lambda: operator.get("/attempts/"),
        "poll": lambda: operator.get(
            "/attempts/poll/",
            {"v": [f"{a.pk}.{version(a)}" for a in attempts], "newest": newest, "seam": "ok"},
            **htmx,
        ),
        "detail": lambda: operator.get("/attempts/aa_0/"),
        "detail poll": lambda: operator.get(
            "/attempts/aa_1/", {"v": "0"}, HTTP_HX_TARGET="detail", **htmx
        ),
        "events": lambda: operator.get("/events/"),
    }
    timings: list[float] = []
    fault_started = time.monotonic()
    while time.monotonic() - fault_started < 8:
        for name, call in requests.items():
            took, response = timed(call)
            assert response.status_code == 200, (name, response.status_code)
            assert took < PAGE_BOUND, (name, took)
            timings.append(took)
    body = operator.get("/attempts/").content.decode()
    assert "Seam is not answering" in body and "may be stale since" in body

    calls = hung_seam.calls()
    # One try per interval at most, fewer as the back-off grows: never a storm.
    assert 1 <= calls <= 8 / 1 + 1
    log.info(
        "hung seam pages n=%d p50_ms=%.0f max_ms=%.0f seam_calls=%d seconds=%.1f",
        len(timings),
        statistics.median(timings) * 1000,
        max(timings) * 1000,
        calls,
        time.monotonic() - fault_started,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["open", "track", "refresh"])
def test_an_explicit_request_says_seam_did_not_answer(operator, hung_seam, how):
    pending("aa_recorded")
    call = {
        "open": lambda: operator.get("/attempts/aa_never_recorded/"),
        "track": lambda: operator.post(
            "/attempts/track/", {"action_attempt_id": "aa_never_recorded"}
        ),
        "refresh": lambda: operator.post("/attempts/aa_recorded/refresh/", follow=True),
    }[how]

    took, response = timed(call)

    assert took < EXPLICIT_BOUND
    body = response.content.decode()
    assert "Seam did not answer" in body
    assert API_KEY not in body
    if how == "refresh":
        assert response.status_code == 200 and "may be stale since" in body
    else:
        assert response.status_code == 503
        assert "<h1>Seam did not answer</h1>" in body
    assert hung_seam.calls() >= 1
    log.info("hung seam explicit=%s seconds=%.2f seam_calls=%d", how, took, hung_seam.calls())
