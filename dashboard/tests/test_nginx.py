"""The dashboard as deployed: Debian's nginx, configured from deploy/nginx.conf, terminating TLS in
front of two gunicorn instances on different ports that share the database and the cache."""

import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles.storage import staticfiles_storage
from django.test import Client

from attempts.merge import Observation, merge
from attempts.models import Attempt, Source, WebhookEvent
from fakeseam import API_KEY, free_port
from fakeseam.process import terminate, wait_listening
from pages.templatetags.attempt_tags import version
from testing.proxy import CountingProxy
from testing.servers import BASE_DIR, Gunicorn, wait_until
from testing.webhooks import SECRET, seam_event, signed_headers

pytestmark = [pytest.mark.nginx, pytest.mark.gunicorn, pytest.mark.seam]

SAMPLE = BASE_DIR / "deploy" / "nginx.conf"
PASSWORD = "correct horse battery staple"


def render(sample: str, https_port: int, http_port: int, upstreams: list[str], tls: Path) -> str:
    """The sample with this machine's ports, certificate and upstreams, and nothing else changed."""
    replacements = {
        "    listen 80;\n": f"    listen 127.0.0.1:{http_port};\n",
        "    listen [::]:80;\n": "",
        "    listen 443 ssl http2;\n": f"    listen 127.0.0.1:{https_port} ssl http2;\n",
        "    listen [::]:443 ssl http2;\n": "",
        "/etc/letsencrypt/live/ops.example.com/fullchain.pem": str(tls / "cert.pem"),
        "/etc/letsencrypt/live/ops.example.com/privkey.pem": str(tls / "key.pem"),
        "    server 127.0.0.1:8000;\n    server 127.0.0.1:8001;\n": "".join(
            f"    server {upstream};\n" for upstream in upstreams
        ),
    }
    for old, new in replacements.items():
        assert old in sample, f"deploy/nginx.conf no longer has {old!r}"
        sample = sample.replace(old, new)
    return sample


class Nginx:
    """Debian's nginx in the foreground, with its own prefix, pid and logs in a temporary dir."""

    def __init__(self, upstreams: list[str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nginx-"))
        self.https_port, self.http_port = free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.https_port}"
        self.upstreams = upstreams
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 15) -> "Nginx":
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
            + ["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
            + ["-addext", "subjectAltName=IP:127.0.0.1"]
            + ["-keyout", str(self.dir / "key.pem"), "-out", str(self.dir / "cert.pem")],
            check=True,
            capture_output=True,
        )
        (self.dir / "site.conf").write_text(self.site())
        temp_paths = "".join(
            f"  {kind}_temp_path {self.dir / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, workers would otherwise run as nobody, who cannot write the temp dirs.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {self.dir / 'nginx.pid'};\n"
            f"error_log {self.dir / 'error.log'} warn;\nevents {{ worker_connections 512; }}\n"
            f"http {{\n  access_log off;\n{temp_paths}  include {self.dir / 'site.conf'};\n}}\n"
        )
        self.process = subprocess.Popen(
            [shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(self.dir)]
            + ["-c", str(self.dir / "nginx.conf"), "-e", str(self.dir / "error.log")]
            + ["-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_listening(self.process, self.https_port, "nginx", timeout)
        except RuntimeError as e:
            raise RuntimeError(f"{e}: {self.errors()}") from None
        return self

    def site(self) -> str:
        return render(SAMPLE.read_text(), self.https_port, self.http_port, self.upstreams, self.dir)

    def errors(self) -> str:
        log = self.dir / "error.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def stop(self) -> None:
        terminate(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def behind_nginx(env: dict[str, str]) -> Iterator[Nginx]:
    """nginx -> two gunicorn instances (two workers each) started with `env`; `.servers`."""
    ports = [free_port(), free_port()]
    nginx = Nginx([f"127.0.0.1:{port}" for port in ports])
    env = {"BEHIND_PROXY": "true", "ALLOWED_HOSTS": "127.0.0.1", **env}
    env["CSRF_TRUSTED_ORIGINS"] = nginx.url
    servers = [Gunicorn(env=env, workers=2, port=port) for port in ports]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(Gunicorn.start, servers))
    try:
        nginx.start()
        nginx.servers = servers
        yield nginx
    finally:
        nginx.stop()
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def stack(django_db_setup, fake_seam):
    """nginx -> two gunicorn instances (two workers each) -> a counting proxy -> Seam's fake."""
    with CountingProxy(fake_seam.url) as seam:
        env = {
            "SEAM_API_URL": seam.url,
            "SEAM_API_KEY": API_KEY,
            "SEAM_WEBHOOK_SECRET": SECRET,
            "SEAM_POLL_SECONDS": "1",
        }
        with behind_nginx(env) as nginx:
            nginx.seam = seam
            yield nginx


def https(stack: Nginx) -> httpx.Client:
    trust = ssl.create_default_context(cafile=stack.dir / "cert.pem")
    return httpx.Client(base_url=stack.url, verify=trust, timeout=20)


def session_cookie() -> str:
    client = Client()
    client.force_login(User.objects.create_user("viewer"))
    return client.cookies["sessionid"].value


def webhook_lines(server: Gunicorn) -> int:
    return len(re.findall(r"path=/webhooks/seam/ status=200", server.output()))


@pytest.mark.django_db(transaction=True)
class TestThroughNginx:
    @pytest.mark.browser
    def test_an_operator_logs_in_and_watches_attempts_end(self, stack, fake_seam, tmp_path):
        from playwright.sync_api import expect

        from testing.browser import chromium

        User.objects.create_superuser("operator", password=PASSWORD)
        ending = fake_seam.lock_door()["action_attempt_id"]
        failing = fake_seam.unlock_door()["action_attempt_id"]
        for attempt_id in (ending, failing):
            fake_seam.set_attempt(attempt_id, "pending")
            merge(attempt_id, Observation(status="pending"), source=Source.API)
        violations: list[str] = []
        with chromium() as browser:
            page = browser.new_context(ignore_https_errors=True).new_page()

            def on_console(message) -> None:
                if "Content Security Policy" in message.text:
                    violations.append(message.text)

            page.on("console", on_console)
            page.goto(f"{stack.url}/attempts/")
            page.fill("#id_username", "operator")
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{stack.url}/attempts/")
            rows = {a: page.locator(f"tr:has(a[title='{a}']) .badge") for a in (ending, failing)}
            expect(rows[ending].first).to_have_text("pending")
            fake_seam.set_attempt(ending, "success", result={"was_confirmed_by_device": True})
            fake_seam.set_attempt(failing, "error", error={"type": "x", "message": "jammed"})
            expect(rows[ending].first).to_have_text("success", timeout=10_000)
            expect(rows[failing].first).to_have_text("error", timeout=10_000)
            expect(page.locator(f"tr:has(a[title='{failing}'])")).to_contain_text("jammed")
            # The audit admin works under the same policy.
            page.goto(f"{stack.url}/admin/attempts/attempt/?status__exact=error")
            page.click(f"text={failing}")
            expect(page.locator(".field-error_json pre")).to_contain_text('"message": "jammed"')
        assert violations == []

    def test_it_serves_static_files_compressed_and_cached_for_good(self, stack):
        with https(stack) as http:
            response = http.get(
                staticfiles_storage.url("css/dashboard.css"), headers={"Accept-Encoding": "gzip"}
            )
            assert response.status_code == 200
            assert response.headers["content-encoding"] == "gzip"
            assert response.headers["cache-control"] == "max-age=315360000, public, immutable"
            assert "text/css" in response.headers["content-type"]

    def test_the_request_id_is_nginxs_never_the_clients(self, stack):
        with https(stack) as http:
            response = http.get("/healthz", headers={"X-Request-ID": "chosen-by-the-client"})
        rid = response.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
        wait_until(
            lambda: any(f"request_id={rid}" in server.output() for server in stack.servers),
            10,
            "the request line with nginx's request id",
        )

    def test_it_sends_plain_http_to_https(self, stack):
        response = httpx.get(f"http://127.0.0.1:{stack.http_port}/attempts/?status=error")
        assert response.status_code == 301
        assert response.headers["location"] == "https://127.0.0.1/attempts/?status=error"

    def test_it_takes_a_webhook_and_refuses_an_oversized_one(self, stack):
        body = json.dumps(seam_event(event_id="evt_nginx", action_attempt_id="aa_n")).encode()
        with https(stack) as http:
            response = http.post("/webhooks/seam/", content=body, headers=signed_headers(body))
            assert response.status_code == 200, response.text
            big = b" " * (2 * 1024 * 1024)
            response = http.post("/webhooks/seam/", content=big, headers=signed_headers(big))
            assert response.status_code == 413
        assert WebhookEvent.objects.get(event_id="evt_nginx").attempt.status == "success"

    def test_a_burst_over_both_instances_is_recorded_exactly_once(self, stack):
        events = [
            seam_event(
                event_id=f"evt_burst_{n}",
                action_attempt_id=f"aa_burst_{n % 40}",
                event_type="action_attempt.lock_door." + ("failed" if n % 3 else "succeeded"),
            )
            for n in range(120)
        ]
        before = [webhook_lines(server) for server in stack.servers]

        def deliver(n: int) -> int:
            body = json.dumps(events[n % len(events)]).encode()
            headers = signed_headers(body, msg_id=f"msg_burst_{n % len(events)}")
            with https(stack) as http:
                return http.post("/webhooks/seam/", content=body, headers=headers).status_code

        # Every event twice, as Svix's retries do, from 16 senders at once.
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(deliver, range(2 * len(events))))
        assert statuses == [200] * len(statuses)
        recorded = WebhookEvent.objects.filter(event_id__startswith="evt_burst_")
        assert recorded.count() == len(events)
        assert Attempt.objects.filter(action_attempt_id__startswith="aa_burst_").count() == 40
        served = [webhook_lines(s) - b for s, b in zip(stack.servers, before, strict=True)]
        assert sum(served) == 2 * len(events) and min(served) > 0, served

    def test_polling_through_both_instances_costs_seam_one_call_a_second(self, stack, fake_seam):
        ids = [fake_seam.lock_door()["action_attempt_id"] for _ in range(10)]
        for attempt_id in ids:
            fake_seam.set_attempt(attempt_id, "pending")
            merge(attempt_id, Observation(status="pending"), source=Source.API)
        params = [("v", f"{a.pk}.{version(a)}") for a in Attempt.objects.filter(pk__gt=0)]
        cookie = session_cookie()
        window, viewers = 5.0, 6
        start = time.monotonic()
        stack.seam.reset()
        failures: list[int] = []

        def viewer(offset: float) -> None:
            tick = start + offset
            with https(stack) as http:
                http.cookies.set("sessionid", cookie)
                while tick < start + window:
                    time.sleep(max(0.0, tick - time.monotonic()))  # one poll a second
                    response = http.get("/attempts/poll/", params=params)
                    if response.status_code != 200:
                        failures.append(response.status_code)
                    tick += 1.0

        threads = [threading.Thread(target=viewer, args=(n / viewers,)) for n in range(viewers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - start
        calls = stack.seam.calls_to("/action_attempts/list")
        assert failures == []
        assert 1 <= len(calls) <= int(elapsed) + 1, (len(calls), elapsed)
        assert stack.seam.calls_to("/action_attempts/get") == []
