"""The Content-Security-Policy header: one strict policy on every kind of response the app
makes, static files and error pages included."""

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path

from dashboard.database import LockWaitTimeout

# Directive -> sources. No inline scripts, styles or eval (see dashboard/settings.py).
POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def directives(header: str) -> dict[str, list[str]]:
    """The policy as directive -> sources: the order of directives carries no meaning."""
    parsed: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in parsed, f"{name} twice in {header!r}"
        parsed[name] = sources
    return parsed


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the view failed")


def database_down(request: HttpRequest) -> HttpResponse:
    # What an outage raises (dashboard/database.py): any other database error is a 500.
    raise LockWaitTimeout("database is locked (waited for the write turn)")


urlpatterns = [
    path("boom/", boom),
    path("database-down/", database_down),
    path("", include("dashboard.urls")),
]


def assert_policy(response: HttpResponse) -> None:
    assert directives(response["Content-Security-Policy"]) == POLICY
    assert "Content-Security-Policy-Report-Only" not in response


@pytest.fixture
def operator(client: Client, db) -> Client:
    client.force_login(User.objects.create_superuser("operator"))
    return client


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/accounts/login/", 200),
        ("/", 302),
        ("/attempts/", 302),
        ("/no-such-page/", 404),
        ("/healthz", 200),
    ],
)
def test_anonymous_responses_carry_the_policy(client, db, url, status):
    response = client.get(url)
    assert response.status_code == status
    assert_policy(response)


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/attempts/", {}),
        ("/attempts/poll/", {"HTTP_HX_REQUEST": "true"}),
        ("/attempts/export.csv", {}),
        ("/insights/", {}),
        ("/admin/", {}),
    ],
)
def test_pages_partials_and_exports_carry_the_policy(operator, url, headers):
    response = operator.get(url, **headers)
    assert response.status_code == 200
    assert_policy(response)


def test_static_files_carry_the_policy(client):
    response = client.get(staticfiles_storage.url("css/dashboard.css"))
    assert response.status_code == 200
    assert_policy(response)


def test_refusals_and_a_webhook_carry_the_policy(client, db, settings):
    login = {"username": "x", "password": "y"}
    refused = Client(enforce_csrf_checks=True).post("/accounts/login/", login)
    assert refused.status_code == 403
    assert_policy(refused)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        locked_out = client.post("/accounts/login/", login)
    assert locked_out.status_code == 429
    assert_policy(locked_out)
    webhook = client.post("/webhooks/seam/", b"{}", content_type="application/json")
    assert webhook.status_code == 503
    assert_policy(webhook)


@pytest.mark.urls(__name__)
def test_error_pages_carry_the_policy(client, db):
    client.raise_request_exception = False
    response = client.get("/boom/")
    assert response.status_code == 500
    assert_policy(response)
    # DatabaseUnavailableMiddleware's readable 503.
    response = client.get("/database-down/")
    assert response.status_code == 503
    assert b"The database is unavailable" in response.content
    assert_policy(response)
