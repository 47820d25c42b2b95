"""Single sign-on through a real OpenID provider (npm's oidc-provider on loopback), with Debian's
chromium signing in to the dashboard served by gunicorn."""

import re
import time

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.access import Role, role_of
from accounts.models import ProviderAccount
from attempts.models import OperatorAction
from fakeseam import API_KEY, free_port
from testing.browser import chromium
from testing.faults import pending_connections, silent_server
from testing.oidc import OidcProvider
from testing.proxy import CountingProxy
from testing.servers import Gunicorn
from testing.users import user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.gunicorn, pytest.mark.seam]

PASSWORD = "a long test password"
ACCOUNTS = {
    "olivia": {"groups": ["ops"]},
    "victor": {"groups": ["readers"]},
    "ada": {"groups": ["readers", "platform"]},
    "mallory": {"groups": ["marketing"]},
}
GROUPS = {
    "OIDC_NAME": "Test IdP",
    "OIDC_VIEWER_GROUPS": "readers",
    "OIDC_OPERATOR_GROUPS": "ops",
    "OIDC_ADMIN_GROUPS": "platform",
}


@pytest.fixture(scope="module")
def seam_calls(fake_seam):
    with CountingProxy(fake_seam.url) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def stack(django_db_setup, seam_calls):
    """The dashboard (gunicorn) and its provider, each told where the other is."""
    port = free_port()
    with OidcProvider(f"http://127.0.0.1:{port}", ACCOUNTS) as idp:
        env = idp.env(**GROUPS, SEAM_API_URL=seam_calls.url, SEAM_API_KEY=API_KEY)
        with Gunicorn(env=env, port=port, workers=1) as server:
            yield server, idp


def sign_in(browser, url: str, login: str):
    """Through the login page's button and the provider's own sign-in form; the page where the
    browser lands."""
    page = browser.new_context().new_page()
    page.goto(f"{url}/accounts/login/")
    page.click("text=Sign in with Test IdP")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf"^{re.escape(url)}/(attempts|accounts/login)/"))
    return page


def said(page) -> str:
    """What the page's messages say."""
    return page.locator(".messages").inner_text()


def post(page, url: str, path: str, form: dict | None = None) -> int:
    """A POST from the signed-in browser, with its CSRF token, as a form would send it."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        url + path, form=form or {}, headers={"X-CSRFToken": token}, max_redirects=0
    )
    return response.status


@pytest.mark.django_db(transaction=True)
class TestSignIn:
    """The database is read once the browser is closed: Playwright's loop runs beside it."""

    def test_an_operator_signs_in_and_tracks(self, stack, fake_seam):
        server, idp = stack
        action_attempt_id = fake_seam.lock_door()["action_attempt_id"]

        with chromium() as browser:
            page = sign_in(browser, server.url, "olivia")
            assert page.url == f"{server.url}/attempts/"
            page.fill("input[name=action_attempt_id]", action_attempt_id)
            page.click("form.track button[type=submit]")
            page.wait_for_url(f"{server.url}/attempts/{action_attempt_id}/")

        user = User.objects.get(username="olivia")
        assert role_of(user) == Role.OPERATOR and not user.has_usable_password()
        link = user.provider_account
        assert (link.issuer, link.subject) == (idp.issuer, "olivia")
        assert OperatorAction.objects.get().user == user

    def test_a_viewer_gets_403_on_track_and_refresh_and_seam_is_not_asked(
        self, stack, fake_seam, seam_calls
    ):
        server, _ = stack
        action_attempt_id = fake_seam.lock_door()["action_attempt_id"]
        with chromium() as browser:
            page = sign_in(browser, server.url, "victor")
            assert page.url == f"{server.url}/attempts/"
            assert page.locator("input[name=action_attempt_id]").count() == 0
            seam_calls.reset()
            track = post(page, server.url, "/attempts/track/", {"action_attempt_id": "x"})
            refresh = post(page, server.url, f"/attempts/{action_attempt_id}/refresh/")

        assert (track, refresh) == (403, 403)
        assert seam_calls.calls == [] and not OperatorAction.objects.exists()
        assert role_of(User.objects.get(username="victor")) == Role.VIEWER

    def test_an_admin_group_makes_an_admin(self, stack):
        server, _ = stack
        with chromium() as browser:
            page = sign_in(browser, server.url, "ada")
            assert page.url == f"{server.url}/attempts/"
            page.goto(f"{server.url}/admin/auth/user/")
            heading = page.locator("h1").inner_text()
        assert heading == "Select user to change"
        assert role_of(User.objects.get(username="ada")) == Role.ADMIN

    def test_a_user_outside_the_allowed_groups_is_refused_and_no_account_is_made(self, stack):
        server, _ = stack
        with chromium() as browser:
            page = sign_in(browser, server.url, "mallory")
            landed, message = page.url, said(page)
        assert landed.startswith(f"{server.url}/accounts/login/")
        assert "none of your groups there may use this dashboard" in message
        assert not User.objects.filter(username="mallory").exists()
        assert not ProviderAccount.objects.exists()

    def test_roles_are_read_again_at_every_sign_in(self, stack):
        server, _ = stack
        with chromium() as browser:
            sign_in(browser, server.url, "olivia")
        user = User.objects.get(username="olivia")
        user.groups.clear()  # say an admin made them a viewer here
        assert role_of(User.objects.get(pk=user.pk)) == Role.VIEWER

        with chromium() as browser:
            sign_in(browser, server.url, "olivia")

        assert role_of(User.objects.get(pk=user.pk)) == Role.OPERATOR
        assert User.objects.count() == 1

    def test_a_local_account_of_the_same_name_is_not_taken_over(self, stack):
        server, _ = stack
        local = user_with_role(Role.ADMIN, "olivia", password=PASSWORD)

        with chromium() as browser:
            page = sign_in(browser, server.url, "olivia")
            landed, message = page.url, said(page)

        assert landed.startswith(f"{server.url}/accounts/login/")
        assert "An account named 'olivia' already exists here" in message
        assert not ProviderAccount.objects.exists()
        assert User.objects.get().pk == local.pk

    @pytest.mark.parametrize("mode", ["other_key", "other_audience", "expired"])
    def test_an_id_token_that_does_not_verify_is_refused(self, stack, mode):
        server, idp = stack
        idp.id_tokens(mode)
        try:
            with chromium() as browser:
                page = sign_in(browser, server.url, "olivia")
                landed, message = page.url, said(page)
                page.goto(f"{server.url}/attempts/")
                still_out = page.url.startswith(f"{server.url}/accounts/login/")
        finally:
            idp.id_tokens("")

        assert landed.startswith(f"{server.url}/accounts/login/")
        assert "Test IdP's answer could not be verified" in message
        assert still_out and not User.objects.exists()
        assert "outcome=unverified" in server.output()


@pytest.mark.django_db
class TestProviderDown:
    def sso(self, settings, issuer: str) -> None:
        settings.OIDC_ISSUER, settings.OIDC_NAME = issuer, "Test IdP"
        settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET = "dashboard", "secret"

    def test_the_login_page_says_so_and_passwords_still_work(self, client, settings):
        self.sso(settings, f"http://127.0.0.1:{free_port()}")
        user_with_role(Role.OPERATOR, "local", password=PASSWORD)

        page = client.get("/accounts/login/").content.decode()

        assert "Test IdP is unavailable right now: sign in with your password." in page
        assert "Sign in with Test IdP" not in page
        response = client.post("/accounts/login/", {"username": "local", "password": PASSWORD})
        assert (response.status_code, response["Location"]) == (302, "/attempts/")

    def test_its_button_leads_back_to_the_login_page_with_the_reason(self, settings):
        self.sso(settings, f"http://127.0.0.1:{free_port()}")
        response = Client().get("/oidc/authenticate/", follow=True)
        assert response.redirect_chain == [("/accounts/login/", 302)]
        assert "Test IdP is unavailable right now" in response.content.decode()

    def test_a_hung_provider_costs_the_login_page_one_timeout(self, client, settings):
        with silent_server() as hung:
            self.sso(settings, f"http://127.0.0.1:{hung.getsockname()[1]}")
            started = time.monotonic()
            first = client.get("/accounts/login/")
            waited = time.monotonic() - started
            started = time.monotonic()
            second = client.get("/accounts/login/")
            again = time.monotonic() - started
            assert pending_connections(hung) == 1
        assert first.status_code == second.status_code == 200
        assert "unavailable right now" in second.content.decode()
        assert 2.5 < waited < 5 and again < 1

    def test_without_an_issuer_there_is_no_button(self, client):
        page = client.get("/accounts/login/").content.decode()
        assert "Log in" in page and "Sign in with" not in page
        assert client.get("/oidc/authenticate/").status_code == 404


@pytest.mark.django_db
class TestCallback:
    """What the provider's redirect back says when it is no sign-in: said on the login page."""

    @pytest.fixture(autouse=True)
    def sso(self, settings):
        settings.OIDC_ISSUER, settings.OIDC_NAME = f"http://127.0.0.1:{free_port()}", "Test IdP"
        settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET = "dashboard", "secret"

    def test_a_sign_in_the_user_cancelled_at_the_provider(self, client):
        query = {"error": "access_denied", "error_description": "End-User aborted interaction"}
        response = client.get("/oidc/callback/", query, follow=True)
        assert response.redirect_chain == [("/accounts/login/", 302)]
        body = response.content.decode()
        assert "Test IdP did not sign you in: End-User aborted interaction" in body
        assert "_auth_user_id" not in client.session

    def test_a_state_this_browser_did_not_start(self, client):
        session = client.session
        session["oidc_states"] = {"started-here": {"nonce": "n", "code_verifier": None}}
        session.save()
        response = client.get("/oidc/callback/", {"code": "c", "state": "another"}, follow=True)
        assert response.redirect_chain == [("/accounts/login/", 302)]
        assert "That sign-in had expired or was used already" in response.content.decode()
        assert not User.objects.exists()
