import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from fakeseam import free_port
from testing.servers import Gunicorn


class TestHealthz:
    def test_it_answers_without_login_or_database(self, client, db, django_assert_num_queries):
        with django_assert_num_queries(0):
            response = client.get("/healthz")
        assert response.status_code == 200
        assert response.content == b"ok\n"
        assert "no-cache" in response["Cache-Control"]


class TestReadyz:
    def test_it_answers_ready(self, client, db):
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.content == b"database ok\nmigrations ok\ncache ok\n"
        assert "no-cache" in response["Cache-Control"]

    def test_it_stays_ready_without_the_cache_and_says_so(self, client, db, settings):
        closed = f"redis://127.0.0.1:{free_port()}/0"
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": closed,
            }
        }
        response = client.get("/readyz")
        # Every page answers from the database while the cache is away (dashboard/cache.py).
        assert response.status_code == 200
        assert response.content.startswith(b"database ok\nmigrations ok\ncache unavailable (")
        assert closed.encode() not in response.content

    @pytest.mark.django_db(transaction=True)
    @pytest.mark.gunicorn
    def test_it_names_a_failed_database(self):
        down = f"postgres://dashboard:s3cret@127.0.0.1:{free_port()}/dashboard"
        with Gunicorn(env={"DATABASE_URL": down}, workers=1) as server:
            response = httpx.get(f"{server.url}/readyz", timeout=10)
        assert response.status_code == 503
        assert response.text.startswith("database failed (OperationalError)\n")
        assert "s3cret" not in response.text and "s3cret" not in server.output()

    @pytest.mark.django_db(transaction=True)
    @pytest.mark.gunicorn
    def test_it_answers_in_seconds_when_the_cache_hangs(self):
        with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
            env = {"CACHE_URL": f"redis://127.0.0.1:{silent.getsockname()[1]}/0"}
            with Gunicorn(env=env, workers=1) as server:
                started = time.monotonic()
                response = httpx.get(f"{server.url}/readyz", timeout=20)
                elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert response.text == (
            "database ok\nmigrations ok\ncache unavailable (TimeoutError): serving without it\n"
        )
        assert elapsed < 5

    @pytest.mark.gunicorn
    @pytest.mark.django_db(transaction=True)
    def test_probes_at_once_never_answer_a_false_503(self):
        with Gunicorn(workers=2) as server:

            def probes(_: int) -> list[int]:
                with httpx.Client(base_url=server.url, timeout=10) as http:
                    return [http.get("/readyz").status_code for _ in range(15)]

            with ThreadPoolExecutor(8) as pool:
                answers = [status for batch in pool.map(probes, range(8)) for status in batch]
        assert answers == [200] * 120
