import os
import signal

import pytest
from django.core.management import call_command

from fakeseam import API_KEY, FakeSeam


def pytest_configure(config):
    # scripts/test.sh runs its two passes in the background and stops them with SIGTERM (where
    # Ctrl-C does not reach them): stop as on Ctrl-C, so that fixtures stop what they started.
    signal.signal(signal.SIGTERM, _interrupted)


def _interrupted(signum, frame):
    raise KeyboardInterrupt


@pytest.fixture(scope="session", autouse=True)
def collected_static():
    """Pages name hashed static files from collectstatic's manifest, as deployed: collect once
    (scripts/test.sh has, for both of its passes at once)."""
    if os.environ.get("DASHBOARD_STATIC_COLLECTED"):
        return
    call_command("collectstatic", "--noinput", verbosity=0)


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
