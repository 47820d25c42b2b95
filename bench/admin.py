"""The audit admin's list pages at a million attempts (SQLite), next to a stock ModelAdmin.

Loads 1,000,000 attempts (load_attempts), one webhook event per ended attempt and their status
history into a SQLite file in the temp dir (kept between runs: delete it to reload), then times
each admin page in-process with Django's test client as a logged-in superuser. The baseline, in
the same run, is a plain ModelAdmin with the same columns, filters and search, as Django makes it
by default (full COUNT(*), DISTINCT for the filter's choices, every column loaded).

    .venv/bin/python bench/admin.py [--attempts 1000000] [--repeat 15]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--attempts", type=int, default=1_000_000)
parser.add_argument("--repeat", type=int, default=15)
args = parser.parse_args()

DB = Path(tempfile.gettempdir()) / f"dashboard-bench-admin-{args.attempts}.sqlite3"
os.environ.update(
    {
        "DATABASE_URL": f"sqlite:///{DB}",
        "CACHE_URL": "locmemcache://",
        "SECRET_KEY": "bench-only-not-a-secret",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "testserver",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
    }
)
os.environ.pop("BEHIND_PROXY", None)
os.environ.pop("HTTPS_ONLY", None)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib import admin  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import path  # noqa: E402

from attempts.models import Attempt, StatusChange, WebhookEvent  # noqa: E402
from dashboard import health  # noqa: E402

stock = admin.AdminSite(name="stock")


class StockAttemptAdmin(admin.ModelAdmin):
    list_display = ["action_attempt_id", "action_type", "status", "first_seen_at", "ended_at"]
    list_filter = ["action_type", "status", "payload_fetched", "first_seen_at"]
    search_fields = ["action_attempt_id"]
    ordering = ["-first_seen_at", "-id"]


class StockEventAdmin(admin.ModelAdmin):
    list_display = ["received_at", "event_type", "event_id", "attempt", "known_type"]
    list_filter = ["event_type", "known_type", "received_at"]
    search_fields = ["event_id"]
    ordering = ["-received_at", "-id"]


class StockStatusChangeAdmin(admin.ModelAdmin):
    list_display = ["at", "attempt", "from_status", "to_status", "source", "conflict"]
    list_filter = ["to_status", "source", "conflict", "at"]
    ordering = ["-id"]


stock.register(Attempt, StockAttemptAdmin)
stock.register(WebhookEvent, StockEventAdmin)
stock.register(StatusChange, StockStatusChangeAdmin)
urlpatterns = [
    path("healthz", health.healthz),
    path("admin/", admin.site.urls),
    path("stock/", stock.urls),
]
settings.ROOT_URLCONF = __name__


def load() -> None:
    call_command("migrate", verbosity=0)
    if Attempt.objects.count() >= args.attempts:
        return
    call_command("load_attempts", args.attempts - Attempt.objects.count(), seed=1)
    print("Adding an event per ended attempt and the status history ...", flush=True)
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO attempts_webhookevent (event_id, event_type, payload, svix_id,
                occurred_at, created_at, received_at, attempt_id, known_type)
            SELECT 'evt_' || id, 'action_attempt.' || lower(action_type) || '.'
                || CASE status WHEN 'error' THEN 'failed' ELSE 'succeeded' END,
                json_object('event_id', 'evt_' || id, 'action_attempt_id', action_attempt_id,
                    'status', status),
                'msg_' || id, first_seen_at, first_seen_at, first_seen_at, id, 1
            FROM attempts_attempt WHERE status != 'pending'"""
        )
        cursor.execute(
            """INSERT INTO attempts_statuschange (attempt_id, from_status, to_status, source,
                conflict, at)
            SELECT id, '', 'pending', 'api', 0, first_seen_at FROM attempts_attempt"""
        )
        cursor.execute(
            """INSERT INTO attempts_statuschange (attempt_id, from_status, to_status, source,
                conflict, at)
            SELECT id, 'pending', status, 'webhook', 0, coalesce(ended_at, first_seen_at)
            FROM attempts_attempt WHERE status != 'pending'"""
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def timed(client: Client, url: str) -> list[float]:
    response = client.get(url)  # warm: the filters' cached choices, the OS's page cache
    assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return times


def p(times: list[float], q: int) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[q - 1]


def main() -> None:
    load()
    client = Client()
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench")
    client.force_login(user)
    sample = Attempt.objects.order_by("-id").values_list("pk", "action_attempt_id").first()
    since = "2000-01-01T00:00:00Z"  # the date filter's lower bound: everything matches
    pages = {
        "attempts, first page": "attempt/",
        "attempts, status=error": "attempt/?status__exact=error",
        "attempts, LOCK_DOOR + error": "attempt/?action_type=LOCK_DOOR&status__exact=error",
        "attempts, since a date": f"attempt/?first_seen_at__gte={since}",
        "attempts, page 100": "attempt/?p=100",
        "attempts, search an id": f"attempt/?q={sample[1]}",
        "attempt, detail": f"attempt/{sample[0]}/change/",
        "events, first page": "webhookevent/",
        "events, one type": "webhookevent/?event_type=action_attempt.lock_door.failed",
        "status changes, first page": "statuschange/",
        "status changes, to error": "statuschange/?to_status=error",
    }
    counts = (Attempt.objects.count(), WebhookEvent.objects.count(), StatusChange.objects.count())
    print(f"rows: {counts[0]:,} attempts, {counts[1]:,} events, {counts[2]:,} status changes")
    trivial = statistics.median(timed(client, "/healthz"))
    print(f"/healthz (trivial view, same run): p50 {trivial:.1f} ms")
    print(f"{'page':32} {'p50 ms':>8} {'p95 ms':>8} {'stock p50':>10} {'stock/ours':>10}")
    for name, tail in pages.items():
        ours = timed(client, f"/admin/attempts/{tail}")
        stock_url = f"/stock/attempts/{tail.replace('action_type=', 'action_type__exact=')}"
        stock_url = stock_url.replace("event_type=", "event_type__exact=")
        theirs = timed(client, stock_url) if "detail" not in name else None
        line = f"{name:32} {p(ours, 50):8.1f} {p(ours, 95):8.1f}"
        if theirs:
            line += f" {p(theirs, 50):10.1f} {p(theirs, 50) / p(ours, 50):9.1f}x"
        print(line, flush=True)


main()
