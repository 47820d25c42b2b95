import logging
import os
import re
import secrets
import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import HttpRequest, HttpResponse
from django.urls import path

from dashboard.tests.test_csp import directives
from testing.servers import BASE_DIR

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "BEHIND_PROXY": "true",
    "ALLOWED_HOSTS": "ops.example.test",
    "CSRF_TRUSTED_ORIGINS": "https://ops.example.test",
}


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


class TestCheckDeploy:
    def test_it_is_clean_with_production_settings(self):
        done = check_deploy(PRODUCTION)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "System check identified no issues" in done.stdout
        assert "WARNINGS" not in done.stdout + done.stderr

    @pytest.mark.parametrize(
        "change", [{"BEHIND_PROXY": "false"}, {"BEHIND_PROXY": "true", "HTTPS_ONLY": "false"}]
    )
    def test_it_warns_without_https(self, change):
        done = check_deploy({**PRODUCTION, **change})
        assert done.returncode != 0
        for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
            assert warning in done.stderr


class TestHeaders:
    def test_a_page_carries_the_security_headers(self, client, db):
        response = client.get("/accounts/login/")
        assert response.status_code == 200
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["Cross-Origin-Opener-Policy"] == "same-origin"
        policy = directives(response["Content-Security-Policy"])
        assert policy["script-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"]
        assert "unsafe" not in response["Content-Security-Policy"]

    def test_pages_have_no_inline_script_or_style(self, client, db):
        client.force_login(User.objects.create_superuser("operator"))
        for url in ("/accounts/login/", "/attempts/", "/events/", "/admin/attempts/attempt/"):
            page = client.get(url).content.decode()
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), url
            assert "<style" not in page and " style=" not in page, url


class TestStatic:
    def test_hashed_files_are_compressed_and_cached_for_good(self, client):
        url = staticfiles_storage.url("css/dashboard.css")
        assert re.fullmatch(r"/static/css/dashboard\.[0-9a-f]{12}\.css", url)
        response = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
        assert response.status_code == 200
        assert response["Content-Encoding"] == "gzip"
        assert response["Cache-Control"] == "max-age=315360000, public, immutable"
        assert "Accept-Encoding" in response["Vary"]


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the view failed")


urlpatterns = [path("boom/", boom)]


class TestRequestLog:
    def test_it_logs_one_key_value_line_per_request(self, client, db, caplog):
        user = User.objects.create_user("operator")
        client.force_login(user)
        with caplog.at_level(logging.INFO, logger="dashboard.request"):
            client.get("/attempts/", {"q": "x y"})
        [record] = [r for r in caplog.records if r.name == "dashboard.request"]
        assert re.fullmatch(
            rf"method=GET path=/attempts/ status=200 duration_ms=\d+\.\d user={user.pk} "
            r"ip=127\.0\.0\.1 request_id=[0-9a-f]{32}",
            record.getMessage(),
        )

    def test_it_logs_no_password(self, client, db, caplog):
        with caplog.at_level(logging.DEBUG):
            client.post("/accounts/login/", {"username": "x", "password": "hunter2-secret"})
        assert caplog.records and "hunter2-secret" not in caplog.text

    def test_it_quotes_what_would_break_the_line(self, client, db, caplog):
        with caplog.at_level(logging.INFO, logger="dashboard.request"):
            client.get("/no%20such%0Apage")
        [record] = [r for r in caplog.records if r.name == "dashboard.request"]
        assert 'path="/no such\\npage" status=404' in record.getMessage()

    @pytest.mark.urls(__name__)
    def test_it_logs_an_error_once_with_context(self, client, db, caplog):
        user = User.objects.create_user("operator")
        client.force_login(user)
        client.raise_request_exception = False
        with caplog.at_level(logging.INFO):
            response = client.get("/boom/")
        assert response.status_code == 500
        rid = response["X-Request-ID"]
        errors = [r for r in caplog.records if r.exc_info]
        assert len(errors) == 1
        assert errors[0].getMessage() == (
            f"event=unhandled_exception method=GET path=/boom/ user={user.pk} "
            f'ip=127.0.0.1 request_id={rid} error=RuntimeError message="the view failed"'
        )
        assert "status=500 duration_ms=" in caplog.text and f"request_id={rid}" in caplog.text
