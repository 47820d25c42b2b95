"""A CSV export that streams for far longer than gunicorn's worker timeout, through gunicorn as
deployed (gunicorn.conf.py) with the timeout lowered to 2 s: it completes, never cut short."""

import csv
import io
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from dashboard.tests import test_nginx
from dashboard.tests.test_nginx import Nginx
from testing.servers import Gunicorn
from testing.webhooks import SECRET, deliver, seam_event

ROWS = 60_000
TIMEOUT = 3
# About 12 MB of CSV at 1 MB/s: the worker waits on the client for several times its timeout,
# well past what the kernel's socket buffers (a few MB on loopback) take off its hands.
BYTES_PER_SECOND = 1_000_000
RECEIVE_BUFFER = 64 * 1024


def slow_download(
    port: int,
    path: str,
    session: str,
    tls: ssl.SSLContext | None = None,
    streaming: threading.Event | None = None,
) -> tuple[bytes, float]:
    """The body of GET `path` and the seconds it took, read no faster than BYTES_PER_SECOND
    through a small receive buffer, as a client on a slow link does. HTTP/1.0: the body ends
    when the server closes, so a worker killed midway leaves a body cut short, not an error."""
    plain = socket.socket()
    plain.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    plain.settimeout(30)
    plain.connect(("127.0.0.1", port))
    sock = tls.wrap_socket(plain, server_hostname="127.0.0.1") if tls else plain
    started = time.monotonic()
    with sock:
        request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nCookie: sessionid={session}\r\n"
        sock.sendall(request.encode() + b"\r\n")
        received = bytearray()
        while chunk := sock.recv(RECEIVE_BUFFER):
            received += chunk
            if streaming:
                streaming.set()
            # Throttled on purpose: the slow client is what this test is about.
            ahead = len(received) / BYTES_PER_SECOND - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head[:200]
    return body, time.monotonic() - started


def csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode())))


def loaded() -> str:
    """ROWS attempts, and the session cookie of an operator who may export them."""
    call_command("load_attempts", ROWS, "--days", "2", "--seed", "20", stdout=io.StringIO())
    client = Client()
    client.force_login(User.objects.create_user("operator"))
    return client.cookies["sessionid"].value


@pytest.mark.django_db(transaction=True)
@pytest.mark.gunicorn
@pytest.mark.nginx
def test_a_long_export_outlasts_the_worker_timeout(monkeypatch):
    session = loaded()
    expected = ROWS + 1  # and the header

    # The stock sync worker, for contrast: the same download is cut at its timeout.
    stock = {"GUNICORN_CMD_ARGS": f"--timeout {TIMEOUT} --worker-class sync"}
    with Gunicorn(env=stock, workers=1) as server:
        body, _ = slow_download(server.port, "/attempts/export.csv", session)
        assert len(body.split(b"\r\n")) - 1 < expected
        assert "WORKER TIMEOUT" in server.output()

    with Gunicorn(env={"GUNICORN_CMD_ARGS": f"--timeout {TIMEOUT}"}, workers=1) as server:
        body, took = slow_download(server.port, "/attempts/export.csv", session)
        assert took > 2 * TIMEOUT, took
        rows = csv_rows(body)
        assert body.endswith(b"\r\n") and len(rows) == expected
        assert rows[0][0] == "action_attempt_id"
        assert len({row[0] for row in rows[1:]}) == ROWS
        assert "WORKER TIMEOUT" not in server.output()
        # The same worker serves the next request.
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200

    # As deployed behind nginx (deploy/nginx.conf), its read timeout lowered to 2 s as well.
    env = {"GUNICORN_CMD_ARGS": f"--timeout {TIMEOUT}", "BEHIND_PROXY": "true"}
    with Gunicorn(env=env, workers=1) as server:
        nginx = Nginx([f"127.0.0.1:{server.port}"])
        sample = test_nginx.SAMPLE.read_text()
        assert "    proxy_read_timeout 30s;\n" in sample
        lowered = nginx.dir / "sample.conf"
        lowered.write_text(
            sample.replace("proxy_read_timeout 30s", f"proxy_read_timeout {TIMEOUT}s")
        )
        monkeypatch.setattr(test_nginx, "SAMPLE", lowered)
        nginx.start()
        try:
            tls = ssl.create_default_context(cafile=nginx.dir / "cert.pem")
            body, took = slow_download(nginx.https_port, "/attempts/export.csv", session, tls)
        finally:
            nginx.stop()
        assert took > 2 * TIMEOUT, took
        assert body.endswith(b"\r\n") and len(csv_rows(body)) == expected
        assert "WORKER TIMEOUT" not in server.output()


@pytest.mark.django_db(transaction=True)
@pytest.mark.gunicorn
def test_a_long_export_leaves_a_worker_for_webhooks_and_refuses_one_more():
    session = loaded()
    cookies = {"sessionid": session}
    with Gunicorn(env={"SEAM_WEBHOOK_SECRET": SECRET}, workers=2) as server:
        export = f"{server.url}/attempts/export.csv"
        streaming = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(
                slow_download, server.port, "/attempts/export.csv", session, None, streaming
            )
            assert streaming.wait(timeout=15)

            refused = httpx.get(export, cookies=cookies, timeout=5)
            started = time.monotonic()
            recorded = deliver(server, seam_event("evt_during_export", action_attempt_id="aa_x"))
            webhook_seconds = time.monotonic() - started
            assert not first.done()  # all of it happened while the export streamed
            body, _ = first.result()

        assert refused.status_code == 503 and refused.headers["Retry-After"] == "60"
        assert "1 export already running here" in refused.text
        assert recorded.status_code == 200 and webhook_seconds < 2, webhook_seconds
        assert len(csv_rows(body)) == ROWS + 1
        # Its slot is free again once it ended.
        with httpx.stream("GET", export, cookies=cookies, timeout=10) as again:
            assert again.status_code == 200
