"""The dashboard as deployed (gunicorn), started by tests on a free loopback port.

The tests' database must be reachable from the gunicorn workers, so use it from tests marked
`@pytest.mark.django_db(transaction=True)`: their writes are committed and visible.
"""

import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection
from psycopg import connect, sql

from fakeseam import free_port
from fakeseam.process import terminate

BASE_DIR = Path(settings.BASE_DIR)
# The local PostgreSQL server, on this machine as on CI, for tests that need PostgreSQL whichever
# database the test run uses.
POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432"


def wait_until(condition: Callable[[], object], timeout: float, what: str | Callable[[], str]):
    """Waits for `condition()` to hold, checking every 50 ms, and returns what it returned; fails
    the test at the deadline, saying `what` did not happen (a callable: says it then, with what
    it saw)."""
    deadline = time.monotonic() + timeout
    while not (held := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what() if callable(what) else what} within {timeout} s")
        time.sleep(0.05)
    return held


@contextmanager
def serving(server: HTTPServer) -> Iterator[None]:
    """A test's own little HTTP server, answering on a thread until the block ends."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def respond(
    handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict | None = None
) -> None:
    """A test server's whole answer: its status, headers, length and body."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def test_database_url() -> str:
    """The URL of the database the test run is using (the test database, not the real one)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


def manage(*args: str, env: dict[str, str]) -> str:
    """`manage.py` run as a deployer runs it, with `env` over the test run's environment."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """The URL of a migrated PostgreSQL database of the block's own, dropped after it."""
    name = f"test_throwaway_{secrets.token_hex(6)}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    # FORCE ends its connections first: gunicorn's may outlive the block.
    drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
    with connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as server:
        server.execute(create)
        try:
            url = f"{POSTGRES_SERVER}/{name}"
            manage("migrate", "--noinput", env={"DATABASE_URL": url})
            yield url
        finally:
            server.execute(drop)


@contextmanager
def throwaway_database() -> Iterator[str]:
    """The URL of a migrated database of the block's own, of the test run's kind: a SQLite file,
    or a PostgreSQL database on the local server."""
    if connection.vendor == "postgresql":
        with throwaway_postgres() as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="db-") as folder:
        url = f"sqlite:///{folder}/db.sqlite3"
        manage("migrate", "--noinput", env={"DATABASE_URL": url})
        yield url


class Gunicorn:
    """`with Gunicorn(env={...}) as server: httpx.get(server.url + "/healthz")`."""

    def __init__(self, env: dict[str, str] | None = None, workers: int = 2, port: int = 0) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "SECRET_KEY": settings.SECRET_KEY,
            "DEBUG": "false",
            **(env or {}),
        }
        self.workers = workers
        self.process: subprocess.Popen | None = None
        # A file, not a pipe: a full pipe would block workers that log.
        self.log = tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log")

    def start(self, timeout: float = 30) -> "Gunicorn":
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "dashboard.wsgi",
                "--config",
                str(BASE_DIR / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--access-logfile",
                "/dev/null",
            ],
            cwd=BASE_DIR,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.output()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer /healthz in {timeout} s")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        terminate(self.process)

    def __enter__(self) -> "Gunicorn":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
