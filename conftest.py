import os
import signal
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

from fakeseam import API_KEY, FakeSeam


def pytest_configure(config):
    # scripts/test.sh runs its two passes in the background and stops them with SIGTERM (where
    # Ctrl-C does not reach them): stop as on Ctrl-C, so that fixtures stop what they started.
    signal.signal(signal.SIGTERM, _interrupted)
    subprocess.Popen.__init__ = _marked_popen_init


def pytest_unconfigure(config):
    subprocess.Popen.__init__ = _popen_init


def _interrupted(signum, frame):
    raise KeyboardInterrupt


# The markers keep `make check` to the tests that need nothing but SQLite: a test that starts one
# of these programs without its marker fails, saying which marker it needs.
PROGRAM_MARKERS = {
    "redis-server": "redis",
    "nginx": "nginx",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "chromium": "browser",
}
_running: list[pytest.Item] = []
_popen_init = subprocess.Popen.__init__


def needed_marker(argv: list[str]) -> str | None:
    if any("playwright" in a for a in argv[:2]):  # Playwright's driver, which starts chromium
        return "browser"
    if Path(argv[0]).name == "node":
        return "seam"
    if "gunicorn" in argv[:3]:
        return "gunicorn"
    return PROGRAM_MARKERS.get(Path(argv[0]).name)


def _marked_popen_init(self, args, *rest, **kwargs):
    if _running:
        one = isinstance(args, str | bytes | os.PathLike)
        argv = os.fsdecode(args).split() if one else [os.fsdecode(a) for a in args]
        marker = needed_marker(argv)
        if marker and not _running[-1].get_closest_marker(marker):
            command = " ".join(Path(a).name for a in argv[:3])
            pytest.fail(f"{_running[-1].nodeid} runs {command}: mark it @pytest.mark.{marker}")
    _popen_init(self, args, *rest, **kwargs)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


def pytest_runtest_setup(item):
    # Started once for the session: only the first test to use it would start it.
    if "fake_seam" in item.fixturenames and not item.get_closest_marker("seam"):
        pytest.fail(f"{item.nodeid} uses Seam's fake server: mark it @pytest.mark.seam")


@pytest.fixture(scope="session", autouse=True)
def collected_static():
    """Pages name hashed static files from collectstatic's manifest, as deployed: collect once
    (scripts/test.sh has, for both of its passes at once)."""
    if os.environ.get("DASHBOARD_STATIC_COLLECTED"):
        return
    call_command("collectstatic", "--noinput", verbosity=0)


@pytest.fixture(autouse=True)
def fast_password_hasher(request, settings):
    """Hashing a password as deployed takes half a second here, paid by every test that makes a
    user with one, for nothing they check. Tests that start gunicorn keep it: the server checks
    the passwords they store."""
    if not request.node.get_closest_marker("gunicorn"):
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def fake_seam():
    """Seam's fake server on a free loopback port, for the whole test session."""
    with FakeSeam() as seam:
        yield seam


@pytest.fixture
def seam_settings(settings, fake_seam):
    """Points the dashboard's Seam client at the fake server."""
    settings.SEAM_API_URL = fake_seam.url
    settings.SEAM_API_KEY = API_KEY
    return settings


@pytest.fixture
def seam(seam_settings, fake_seam):
    """The fake server, with a client that retries quickly and an outage that ends with the test."""
    seam_settings.SEAM_CLIENT_OPTIONS = {"backoff": 0.01, "max_backoff": 0.05, "max_total": 5}
    yield fake_seam
    fake_seam.outage([])


@pytest.fixture(autouse=True)
def clear_cache(request, django_db_blocker):
    """The cache outlives a test's database rollback: tests that use the database start with an
    empty one (the default cache is a table in that database)."""
    uses_db = request.node.get_closest_marker("django_db") or {
        "db",
        "transactional_db",
        "live_server",
    } & set(request.fixturenames)
    if uses_db:
        from django.core.cache import cache

        from attempts import search

        request.getfixturevalue("django_db_setup")
        with django_db_blocker.unblock():
            cache.clear()
        # Its keys assume ids are never reused, which a rolled-back test does.
        search.matching_keys.cache_clear()
