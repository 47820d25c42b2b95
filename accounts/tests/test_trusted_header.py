"""Sign-in by the header an auth proxy sets: Debian's nginx configured from deploy/nginx.conf with
deploy/nginx-auth-proxy.conf's locations, asking a stand-in for oauth2-proxy who each request
is, in front of gunicorn."""

import os
import subprocess
import sys
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.access import Role, role_of
from dashboard.tests.test_nginx import Nginx, https
from fakeseam import free_port
from testing.servers import BASE_DIR, Gunicorn, respond, serving

pytestmark = [pytest.mark.gunicorn, pytest.mark.nginx]

AUTH_SAMPLE = BASE_DIR / "deploy" / "nginx-auth-proxy.conf"
# Who the stand-in for oauth2-proxy signed in, by its cookie's value, and their groups there.
SIGNED_IN = {"olivia": "ops", "victor": "readers", "mallory": "marketing"}
ROLES = {
    "OIDC_VIEWER_GROUPS": "readers",
    "OIDC_OPERATOR_GROUPS": "ops",
    "OIDC_ADMIN_GROUPS": "platform",
}
HEADERS = {"REMOTE_USER_HEADER": "X-Forwarded-User", "REMOTE_GROUPS_HEADER": "X-Forwarded-Groups"}


class AuthProxy(BaseHTTPRequestHandler):
    """oauth2-proxy's two answers to nginx: /oauth2/auth (who is this?) and its sign-in page."""

    def do_GET(self) -> None:
        if self.path.startswith("/oauth2/sign_in"):
            respond(self, 200, b"Sign in at the provider")
            return
        cookie = SimpleCookie(self.headers.get("Cookie", "")).get("_oauth2_proxy")
        login = cookie.value if cookie else ""
        if login not in SIGNED_IN:
            respond(self, 401)
            return
        groups = SIGNED_IN[login]
        respond(self, 202, headers={"X-Auth-Request-User": login, "X-Auth-Request-Groups": groups})

    def log_message(self, *args: object) -> None:
        pass


class AuthProxyNginx(Nginx):
    """The sample site, its `location /` replaced by the auth proxy sample's locations."""

    def __init__(self, upstreams: list[str], auth_port: int) -> None:
        super().__init__(upstreams)
        self.auth_port = auth_port

    def site(self) -> str:
        sample = super().site()
        start = sample.index("    location / {")
        end = sample.index("    }\n", start) + len("    }\n")
        auth = AUTH_SAMPLE.read_text().replace("127.0.0.1:4180", f"127.0.0.1:{self.auth_port}")
        return sample[:start] + auth + sample[end:]


@pytest.fixture(scope="module")
def stack(django_db_setup):
    auth = ThreadingHTTPServer(("127.0.0.1", 0), AuthProxy)
    port = free_port()
    nginx = AuthProxyNginx([f"127.0.0.1:{port}"], auth.server_address[1])
    env = {
        "BEHIND_PROXY": "true",
        "ALLOWED_HOSTS": "127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": nginx.url,
        **HEADERS,
        **ROLES,
    }
    with serving(auth), Gunicorn(env=env, workers=1, port=port):
        nginx.start()
        try:
            yield nginx
        finally:
            nginx.stop()


def get(stack: Nginx, path: str, signed_in: str = "", **headers: str) -> httpx.Response:
    """A GET through nginx, by a browser the auth proxy signed in as `signed_in` (its cookie)."""
    with https(stack) as http:
        if signed_in:
            http.cookies.set("_oauth2_proxy", signed_in)
        return http.get(path, headers=headers, follow_redirects=True)


@pytest.mark.django_db(transaction=True)
class TestThroughNginx:
    def test_the_proxy_signs_in_the_user_it_names(self, stack):
        page = get(stack, "/attempts/", "olivia")
        assert page.status_code == 200 and '<span class="who">olivia</span>' in page.text
        user = User.objects.get()
        assert role_of(user) == Role.OPERATOR and not user.has_usable_password()

    def test_a_user_and_groups_a_client_sends_are_dropped(self, stack):
        forged = {"X-Forwarded-User": "ada", "X-Forwarded-Groups": "platform"}
        page = get(stack, "/attempts/", "victor", **forged)
        assert page.status_code == 200 and '<span class="who">victor</span>' in page.text
        assert role_of(User.objects.get()) == Role.VIEWER

    def test_nobody_signed_in_at_the_proxy_reaches_the_dashboard(self, stack):
        page = get(stack, "/attempts/", **{"X-Forwarded-User": "ada"})
        assert page.text == "Sign in at the provider"
        assert not User.objects.exists()

    @pytest.mark.parametrize("path", ["/healthz", "/webhooks/seam/"])
    def test_paths_without_sign_in_pass_no_user_on(self, stack, path):
        with https(stack) as http:
            http.request(
                "POST" if "webhooks" in path else "GET",
                path,
                headers={"X-Forwarded-User": "ada", "X-Forwarded-Groups": "platform"},
            )
        assert not User.objects.exists()

    def test_a_user_outside_the_allowed_groups_is_refused(self, stack):
        page = get(stack, "/attempts/", "mallory")
        assert str(page.url).startswith(f"{stack.url}/accounts/login/")
        assert "none of your groups may use this dashboard" in page.text
        assert not User.objects.exists()


@pytest.mark.django_db
class TestInProcess:
    def test_the_header_is_ignored_without_behind_proxy(self, client, settings):
        settings.REMOTE_USER_HEADER, settings.BEHIND_PROXY = "X-Forwarded-User", False
        response = client.get("/attempts/", HTTP_X_FORWARDED_USER="ada")
        assert response.status_code == 302 and response["Location"].startswith("/accounts/")
        assert not User.objects.exists()

    def test_roles_are_read_again_at_every_sign_in(self, settings):
        settings.BEHIND_PROXY = True
        settings.REMOTE_USER_HEADER = HEADERS["REMOTE_USER_HEADER"]
        settings.REMOTE_GROUPS_HEADER = HEADERS["REMOTE_GROUPS_HEADER"]
        settings.OIDC_OPERATOR_GROUPS, settings.OIDC_ADMIN_GROUPS = ["ops"], ["platform"]
        for groups, role in [("ops", Role.OPERATOR), ("readers", Role.VIEWER)]:
            headers = {"HTTP_X_FORWARDED_USER": "olivia", "HTTP_X_FORWARDED_GROUPS": groups}
            assert Client().get("/attempts/", **headers).status_code == 200
            assert role_of(User.objects.get()) == role


def test_it_says_once_at_start_that_the_header_is_ignored():
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env={**os.environ, "SECRET_KEY": "x", "BEHIND_PROXY": "false", **HEADERS},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("event=remote_user_header_ignored") == 1
    assert "header=X-Forwarded-User" in done.stderr
