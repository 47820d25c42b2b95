"""How fast the attempts list answers at a million attempts on SQLite, next to Django's admin.

Loads N attempts (`load_attempts`) into a fresh SQLite database, then times, in-process with
Django's test client and a logged-in superuser (server time: middleware, view, template):
the list's first page, a filtered page (one action_type and status=error), page 1,000 reached
through the cursor, the admin changelist of the same table (as the project registers it, and a
plain ModelAdmin for reference), and the CSV export's rate. It also measures the first page's
transfer (HTML, CSS and JS, compressed as served) and prints the query plans.

    .venv/bin/python bench/dashboard.py [--count 1000000] [--db path/to/kept.sqlite3]
"""

import argparse
import gzip
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

TARGET_P95_MS = 50
TARGET_RATIO = 10
TARGET_TRANSFER_KB = 60


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40, help="timed requests per page")
    parser.add_argument("--db", help="keep the database here and reuse it when already loaded")
    return parser.parse_args()


def setup_django(db_path: Path, static_root: Path) -> None:
    os.environ.update(
        DATABASE_URL=f"sqlite:///{db_path}",
        SECRET_KEY="bench-only-not-a-secret",  # noqa: S106 - a throwaway database
        DEBUG="false",
        ALLOWED_HOSTS="testserver,localhost",
        SEAM_API_KEY="",
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("CACHE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    import django
    from django.conf import settings

    django.setup()
    settings.STATIC_ROOT = static_root
    # The project's URLs plus a plain ModelAdmin of the attempts: Django's admin as it comes.
    from django.contrib import admin
    from django.urls import include, path

    from attempts.models import Attempt

    plain = admin.AdminSite(name="plain-admin")
    plain.register(Attempt, admin.ModelAdmin)
    urls = types.ModuleType("bench_urls")
    urls.urlpatterns = [path("plain-admin/", plain.urls), path("", include("dashboard.urls"))]
    sys.modules["bench_urls"] = urls
    settings.ROOT_URLCONF = "bench_urls"


def load(count: int) -> None:
    from django.core.management import call_command

    from attempts.models import Attempt

    call_command("migrate", verbosity=0)
    have = Attempt.objects.count()
    if have >= count:
        print(f"Reusing {have:,} attempts.")
        return
    # A seed of its own per top-up, so a kept database never gets the same ids twice.
    call_command("load_attempts", count - have, seed=1 + have)


def logged_in(db_path: Path, static_root: Path, count: int):
    """Django on a database of `count` attempts, its static files collected, and a test client
    logged in as a superuser."""
    setup_django(db_path, static_root)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    load(count)
    call_command("collectstatic", interactive=False, verbosity=0)
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client


def timed(client, url: str, runs: int) -> tuple[list[float], int]:
    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        if response.streaming:
            b"".join(response.streaming_content)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return samples, len(response.content)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[18]


def explain(sql_and_params: tuple[str, tuple]) -> str:
    from django.db import connection

    sql, params = sql_and_params
    with connection.cursor() as c:
        c.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(f"    {row[-1]}" for row in c.fetchall())


def transfer(client) -> dict[str, int]:
    """Bytes on the wire for the first page, as the server sends them to a browser that accepts
    compression: the HTML (GZipMiddleware) and each static file it links (whitenoise)."""
    headers = {"Accept-Encoding": "br, gzip"}
    response = client.get("/attempts/", headers=headers)
    encoding = response.get("Content-Encoding", "identity")
    sizes = {f"html ({encoding})": len(response.content)}
    html = gzip.decompress(response.content) if encoding == "gzip" else response.content
    for url in re.findall(rb'(?:href|src)="(/static/[^"]+)"', html):
        response = client.get(url.decode(), headers=headers)
        assert response.status_code == 200, url
        body = b"".join(response.streaming_content) if response.streaming else response.content
        encoding = response.get("Content-Encoding", "identity")
        sizes[f"{url.decode().rsplit('/', 1)[-1]} ({encoding})"] = len(body)
    return sizes


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    try:
        run(args, workdir)
    finally:
        # The static files, and the database unless --db keeps it.
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: Path) -> None:
    db_path = Path(args.db).resolve() if args.db else workdir / "bench.sqlite3"
    client = logged_in(db_path, workdir / "static", args.count)
    from django.db.models import Q

    from attempts.filters import filtered_attempts
    from attempts.listing import list_page
    from attempts.models import Attempt

    total = Attempt.objects.count()
    print(f"\n{total:,} attempts in {db_path} (SQLite), {args.runs} timed requests per page")

    qs = filtered_attempts({})
    started = time.perf_counter()
    page = list_page({})
    for _ in range(998):
        page = list_page({}, after=page.older)
    walk = time.perf_counter() - started
    page_1000 = f"/attempts/?after={page.older.encode()}"
    lock_errors = {"action_type": ["LOCK_DOOR"], "status": ["error"]}

    pages = {
        "list, first page": "/attempts/",
        "list, LOCK_DOOR + error": "/attempts/?action_type=LOCK_DOOR&status=error",
        "list, page 1,000 (cursor)": page_1000,
        "admin changelist (project's)": "/admin/attempts/attempt/",
        "admin, LOCK_DOOR + error": "/admin/attempts/attempt/?"
        "action_type=LOCK_DOOR&status__exact=error",
        "plain ModelAdmin changelist": "/plain-admin/attempts/attempt/",
    }
    results = {}
    for name, url in pages.items():
        samples, size = timed(client, url, args.runs)
        results[name] = samples
        print(
            f"  {name:32} p50 {statistics.median(samples):8.1f} ms   p95 {p95(samples):8.1f} ms"
            f"   {size / 1024:6.1f} KB"
        )
    print(f"  (walking the cursor to page 1,000 took {walk:.1f} s, {walk:.3f} ms per page)")

    started = time.perf_counter()
    response = client.get("/attempts/export.csv")
    rows = sum(chunk.count(b"\n") for chunk in response.streaming_content) - 1
    export_seconds = time.perf_counter() - started
    started = time.perf_counter()
    response = client.get("/attempts/export.csv?action_type=LOCK_DOOR&status=error")
    error_rows = sum(chunk.count(b"\n") for chunk in response.streaming_content) - 1
    error_seconds = time.perf_counter() - started
    print(
        f"  CSV export, everything           {rows:,} rows in {export_seconds:.1f} s:"
        f" {rows / export_seconds:,.0f} rows/s"
    )
    print(
        f"  CSV export, LOCK_DOOR + error    {error_rows:,} rows in {error_seconds:.1f} s:"
        f" {error_rows / error_seconds:,.0f} rows/s"
    )

    sizes = transfer(client)
    compressed = sum(sizes.values())
    print("\nFirst page transfer:")
    for name, size in sizes.items():
        print(f"  {name:40} {size / 1024:6.1f} KB")
    print(f"  {'total, as served':40} {compressed / 1024:6.1f} KB")

    print("\nQuery plans (EXPLAIN QUERY PLAN):")
    ts, pk = page.older.at, page.older.pk
    plans = {
        "first page": qs.defer("result")[:51],
        "LOCK_DOOR + error": filtered_attempts(lock_errors).defer("result")[:51],
        # What list_page() asks for the page after a cursor.
        "page 1,000": qs.filter(first_seen_at__lte=ts)
        .filter(Q(first_seen_at__lt=ts) | Q(id__lt=pk))
        .defer("result")[:51],
    }
    for name, query in plans.items():
        print(f"  {name}:\n{explain(query.query.sql_with_params())}")

    admin = statistics.median(results["admin changelist (project's)"])
    plain = statistics.median(results["plain ModelAdmin changelist"])

    def verdict(met: bool) -> str:
        return "ok" if met else "MISSED"

    print(
        f"\nTargets: p95 < {TARGET_P95_MS} ms; p50 at least {TARGET_RATIO}x faster than the admin"
    )
    print("  (the project's admin is itself tuned for a million rows; a stock ModelAdmin is not)")
    for name in ("list, first page", "list, LOCK_DOOR + error", "list, page 1,000 (cursor)"):
        ours = statistics.median(results[name])
        print(
            f"  {name:28} p95 {verdict(p95(results[name]) < TARGET_P95_MS):6}"
            f" {plain / ours:5.1f}x a stock ModelAdmin {verdict(plain / ours >= TARGET_RATIO):6}"
            f" {admin / ours:5.1f}x the project's admin {verdict(admin / ours >= TARGET_RATIO)}"
        )
    kb = compressed / 1024
    print(f"  first page transfer {kb:.1f} KB < {TARGET_TRANSFER_KB} KB: {verdict(kb < 60)}")


if __name__ == "__main__":
    main()
