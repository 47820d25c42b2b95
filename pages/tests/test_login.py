import re

import httpx
import pytest
from django.contrib.auth.models import User
from django.test import Client

from testing.servers import Gunicorn

PASSWORD = "correct horse battery staple"
ORIGIN = "https://ops.example.test"


@pytest.fixture
def operator(db, settings):
    # A fast hasher: these tests are about counting attempts, not about hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return User.objects.create_user("operator", password=PASSWORD)


def log_in(client: Client, password: str, **headers: str) -> int:
    data = {"username": "operator", "password": password}
    return client.post("/accounts/login/", data, **headers).status_code


class TestLockout:
    def test_it_locks_out_a_username_at_an_address(self, client, operator, settings):
        for _ in range(settings.AXES_FAILURE_LIMIT - 1):
            assert log_in(client, "wrong") == 200
        assert log_in(client, "wrong") == 429
        assert log_in(client, PASSWORD) == 429
        assert "_auth_user_id" not in client.session
        # The same username from elsewhere, and others from here, still log in.
        assert log_in(Client(REMOTE_ADDR="192.0.2.7"), PASSWORD) == 302
        User.objects.create_user("other", password=PASSWORD)
        response = client.post("/accounts/login/", {"username": "other", "password": PASSWORD})
        assert response.status_code == 302

    def test_a_success_resets_the_count(self, client, operator, settings):
        for _ in range(settings.AXES_FAILURE_LIMIT - 1):
            log_in(client, "wrong")
        assert log_in(Client(), PASSWORD) == 302
        assert log_in(client, "wrong") == 200

    def test_forwarded_for_is_ignored_unless_behind_proxy(self, client, operator, settings):
        for n in range(settings.AXES_FAILURE_LIMIT):
            log_in(client, "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
        assert log_in(client, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.99") == 429

    def test_behind_proxy_it_locks_out_the_real_client(self, client, operator, settings):
        settings.BEHIND_PROXY, settings.TRUSTED_PROXY_COUNT = True, 1
        # The client forges entries on the left; the proxy appends the address it saw.
        for n in range(settings.AXES_FAILURE_LIMIT):
            log_in(client, "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, 203.0.113.5")
        assert log_in(client, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.5") == 429
        assert log_in(client, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.6") == 302

    def test_behind_a_load_balancer_it_locks_out_the_client_not_the_balancer(
        self, client, operator, settings
    ):
        """Client → load balancer (10.0.0.2) → nginx: nginx appends the balancer's address, the
        same for every client; bad passwords from one client lock out no other."""
        settings.BEHIND_PROXY, settings.TRUSTED_PROXY_COUNT = True, 2
        for n in range(settings.AXES_FAILURE_LIMIT):
            forged = f"198.51.100.{n}, 203.0.113.5, 10.0.0.2"
            assert log_in(client, "wrong", HTTP_X_FORWARDED_FOR=forged) in (200, 429)
        assert log_in(client, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.5, 10.0.0.2") == 429
        assert log_in(Client(), PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.6, 10.0.0.2") == 302

    def test_a_request_past_fewer_proxies_counts_from_the_left_most(
        self, client, operator, settings
    ):
        settings.BEHIND_PROXY, settings.TRUSTED_PROXY_COUNT = True, 2
        for _ in range(settings.AXES_FAILURE_LIMIT):
            log_in(client, "wrong", HTTP_X_FORWARDED_FOR="203.0.113.5")
        assert log_in(client, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.5") == 429
        assert log_in(Client(), PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.6") == 302


class TestSession:
    def test_it_expires_after_a_shift_or_with_the_browser(self, client, operator):
        assert log_in(client, PASSWORD) == 302
        assert client.session.get_expiry_age() == 12 * 3600
        assert client.session.get_expire_at_browser_close()
        cookie = client.cookies["sessionid"]
        assert not cookie["max-age"] and not cookie["expires"]


class TestCsrfTrap:
    def test_a_tls_proxy_without_behind_proxy_breaks_login(self, operator, settings):
        """The known trap this setting exists for: https in the browser, http at Django."""
        settings.ALLOWED_HOSTS = ["ops.example.test"]
        client = Client(enforce_csrf_checks=True, HTTP_HOST="ops.example.test")
        client.get("/accounts/login/")
        token = client.cookies["csrftoken"].value
        headers = {"HTTP_ORIGIN": ORIGIN, "HTTP_X_CSRFTOKEN": token}
        assert log_in(client, PASSWORD, **headers) == 403


def cookies_of(response: httpx.Response) -> dict[str, str]:
    """Set-Cookie values by name, read by hand: an http client keeps Secure cookies to itself."""
    found = {}
    for header in response.headers.get_list("set-cookie"):
        name, value = header.split(";", 1)[0].split("=", 1)
        found[name] = value
        assert re.search(r";\s*Secure", header, re.I), header
    return found


@pytest.fixture(scope="module")
def behind_proxy(django_db_setup):
    """The app as deployed behind a TLS-terminating proxy (the proxy's headers sent by hand)."""
    env = {
        "BEHIND_PROXY": "true",
        # The load balancer's probes name the worker's own address.
        "ALLOWED_HOSTS": "ops.example.test,127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": ORIGIN,
    }
    with Gunicorn(env=env, workers=1) as server:
        yield server


@pytest.mark.django_db(transaction=True)
@pytest.mark.gunicorn
class TestBehindProxy:
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "ops.example.test"}

    def test_it_logs_in_through_a_tls_proxy(self, behind_proxy):
        User.objects.create_user("operator", password=PASSWORD)
        with httpx.Client(base_url=behind_proxy.url, headers=self.proxied) as http:
            page = http.get("/accounts/login/")
            assert page.status_code == 200
            csrf = cookies_of(page)["csrftoken"]
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
            response = http.post(
                "/accounts/login/",
                data={"username": "operator", "password": PASSWORD, "csrfmiddlewaretoken": token},
                headers={
                    "Cookie": f"csrftoken={csrf}",
                    "Origin": ORIGIN,
                    "Referer": f"{ORIGIN}/accounts/login/",
                },
            )
            assert response.status_code == 302, response.text[:500]
            assert response.headers["location"] == "/attempts/"
            session = cookies_of(response)["sessionid"]
            page = http.get("/attempts/", headers={"Cookie": f"sessionid={session}"})
            assert page.status_code == 200
            assert page.headers["strict-transport-security"] == (
                "max-age=31536000; includeSubDomains"
            )

    def test_it_redirects_plain_http_but_not_the_health_checks(self, behind_proxy):
        headers = {"X-Forwarded-Host": "ops.example.test"}
        response = httpx.get(f"{behind_proxy.url}/attempts/", headers=headers)
        assert response.status_code == 301
        assert response.headers["location"] == f"{ORIGIN}/attempts/"
        for path in ("/healthz", "/readyz"):
            assert httpx.get(behind_proxy.url + path).status_code == 200
