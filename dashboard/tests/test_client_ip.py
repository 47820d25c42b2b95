"""The client's address behind proxies (TRUSTED_PROXY_COUNT), as django-axes and the log see it."""

import os
import subprocess
import sys

import pytest
from django.test import RequestFactory

from dashboard.middleware import client_ip
from testing.servers import BASE_DIR


def address(forwarded: str | None, count: int, settings) -> str:
    settings.BEHIND_PROXY, settings.TRUSTED_PROXY_COUNT = count > 0, count
    headers = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
    return client_ip(RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", **headers))


@pytest.mark.parametrize(
    ("forwarded", "count", "expected"),
    [
        ("203.0.113.5", 0, "127.0.0.1"),  # not behind a proxy: the header is the client's own
        ("198.51.100.1, 203.0.113.5", 1, "203.0.113.5"),  # nginx alone
        ("198.51.100.1, 203.0.113.5, 10.0.0.2", 2, "203.0.113.5"),  # a balancer before nginx
        ("203.0.113.5", 2, "203.0.113.5"),  # past fewer proxies than counted
        ("2001:db8::5, 10.0.0.2", 2, "2001:db8::5"),
        (None, 1, "127.0.0.1"),
        ("", 1, "127.0.0.1"),
        ("not-an-address", 1, "127.0.0.1"),
    ],
)
def test_it_takes_the_entry_the_trusted_proxies_give(settings, forwarded, count, expected):
    assert address(forwarded, count, settings) == expected


def settings_error(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env={**os.environ, "SECRET_KEY": "x", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "env",
    [
        {"BEHIND_PROXY": "false", "TRUSTED_PROXY_COUNT": "2"},
        {"BEHIND_PROXY": "true", "TRUSTED_PROXY_COUNT": "-1"},
    ],
)
def test_it_refuses_a_count_that_cannot_be(env):
    done = settings_error(env)
    assert done.returncode != 0
    assert "TRUSTED_PROXY_COUNT counts the proxies in front of the dashboard" in done.stderr
