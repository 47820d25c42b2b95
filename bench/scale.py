"""The dashboard at scale (issue 10's table): N attempts on SQLite and on PostgreSQL.

For each database, in a process of its own: loads N attempts with `load_attempts` once (kept
under bench/results/ for SQLite, in database `bench_scale_<N>` on PostgreSQL, and reused), then
times in-process with Django's test client (server time: middleware, view, template) the list,
a filtered list, page 1,000, counts for ranges never asked before (the rollups and the edges,
no cache), an id by its middle and by its beginning, the error_type filter and /insights/; the
CSV export's rows per second, and the export of the newest --export-rows (5,000,000) attempts
through gunicorn, complete or not; then webhook p99 under gunicorn with and without a `prune`
deleting --prune-rows old webhook events. Every figure is printed next to its target.

    .venv/bin/python bench/scale.py [--count 1000000] [--databases sqlite postgres] [--warm]
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
RESULTS = BASE_DIR / "bench" / "results"
PAGE_P95_MS = 50
COUNTS_P95_MS = 20
CSV_ROWS_PER_SECOND = 50_000
PRUNE_P99_RATIO = 2


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--runs", type=int, default=30, help="timed requests per figure")
    parser.add_argument("--prune-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--export-rows",
        type=int,
        default=5_000_000,
        help="rows of the CSV export timed through gunicorn (the newest ones)",
    )
    parser.add_argument(
        "--no-load", action="store_true", help="time what the database holds, however many"
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="read the database's files once before timing, as a server whose memory holds them",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # run one database in this process
    return parser.parse_args()


def database_url(kind: str, count: int) -> str:
    if kind == "sqlite":
        RESULTS.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{RESULTS / f'scale-{count}.sqlite3'}"
    import psycopg

    name = f"bench_scale_{count}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f"CREATE DATABASE {name}")
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"


def setup_django(url: str) -> None:
    os.environ.update(
        DATABASE_URL=url,
        SECRET_KEY="bench-only-not-a-secret",  # noqa: S106 - a throwaway database
        DEBUG="false",
        ALLOWED_HOSTS="testserver,localhost,127.0.0.1",
        SEAM_API_KEY="",
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("CACHE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    import django

    django.setup()


def size_bytes() -> int:
    from django.db import connection

    if connection.vendor == "sqlite":
        path = Path(connection.settings_dict["NAME"])
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with connection.cursor() as c:
        c.execute("SELECT pg_database_size(current_database())")
        return c.fetchone()[0]


def load(count: int, more: bool = True) -> str:
    from django.core.management import call_command
    from django.db import connection

    from attempts.models import Attempt

    call_command("migrate", verbosity=0)
    have = Attempt.objects.count()
    if have >= count or not more:
        how = f"reused {have:,} attempts"
    else:
        started = time.monotonic()
        call_command("load_attempts", count - have, seed=1 + have, batch_size=10_000)
        seconds = time.monotonic() - started
        per_million = seconds / (count - have) * 1e6
        how = f"loaded {count - have:,} in {seconds:.0f} s ({per_million:.0f} s per million)"
    if connection.vendor == "postgresql":
        # What autovacuum does after a load, now rather than at some point during the timings:
        # statistics for the planner, and the visibility map for index-only scans.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE) attempts_attempt")
    return how


def warm() -> str:
    """Reads the attempts' tables and indexes once, into the OS's cache (and PostgreSQL's)."""
    from django.db import connection

    started = time.monotonic()
    if connection.vendor == "sqlite":
        path = Path(connection.settings_dict["NAME"])
        for file in path.parent.glob(path.name + "*"):
            with file.open("rb") as f:
                while f.read(1 << 20):
                    pass
    else:
        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            cursor.execute(
                "SELECT pg_prewarm(oid::regclass, 'read') FROM pg_class "
                "WHERE relname LIKE 'attempts%' AND relkind IN ('r', 'i')"
            )
    return f"files read once first ({time.monotonic() - started:.0f} s)"


def verdict(met: bool) -> str:
    return "ok" if met else "MISSED"


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[18]


def timed(call, runs: int) -> list[float]:
    call(0)
    samples = []
    for i in range(1, runs + 1):
        started = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def get(client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)


def run_one(kind: str, args: argparse.Namespace) -> None:
    url = database_url(kind, args.count)
    setup_django(url)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from attempts.counts import compute_stats
    from attempts.filters import FILTER_KEYS, filtered_attempts
    from attempts.listing import list_page
    from attempts.models import Attempt
    from insights.figures import report

    NO_FILTERS = dict.fromkeys(FILTER_KEYS)  # noqa: N806

    how = load(args.count, more=not args.no_load)
    if args.warm:
        how += "; " + warm()
    total = Attempt.objects.count()
    call_command("collectstatic", interactive=False, verbosity=0)
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    size = size_bytes()
    print(
        f"\n== {kind}: {total:,} attempts ({how}); database {size / 1e6:,.0f} MB, "
        f"{size / 1e6 / (total / 1e6):,.0f} MB per million"
    )

    rng = random.Random(7)
    ids = list(
        Attempt.objects.filter(
            pk__in=[rng.randrange(1, total) for _ in range(args.runs + 1)]
        ).values_list("action_attempt_id", flat=True)
    )
    page = list_page({})
    for _ in range(999):
        page = list_page({}, after=page.older)
    now = datetime.now(UTC)

    def fresh_range(i: int) -> None:
        # A range nobody asked for before: random minutes, so the edges are partial hours.
        since = now - timedelta(minutes=rng.uniform(60, 29 * 24 * 60))
        until = since + timedelta(minutes=rng.uniform(30, 10 * 24 * 60))
        compute_stats({"since": since, "until": min(until, now)}, 15)

    def fresh_filtered_range(i: int) -> None:
        since = now - timedelta(minutes=rng.uniform(60, 29 * 24 * 60))
        compute_stats({"since": since, "status": ["error"], "action_type": ["LOCK_DOOR"]}, 15)

    figures = {
        "list, first page": lambda i: get(client, "/attempts/"),
        "list, LOCK_DOOR + error": lambda i: get(
            client, "/attempts/?action_type=LOCK_DOOR&status=error"
        ),
        "list, page 1,000": lambda i: get(client, f"/attempts/?after={page.older.encode()}"),
        "list, error_type=device_offline": lambda i: get(
            client, "/attempts/?error_type=device_offline"
        ),
        "list, id by its middle": lambda i: get(client, f"/attempts/?q={ids[i % len(ids)][9:23]}"),
        "list, id by its beginning": lambda i: get(client, f"/attempts/?q={ids[i % len(ids)][:8]}"),
        "counts, fresh range (since/until)": fresh_range,
        "counts, fresh range + filters": fresh_filtered_range,
        "insights, 24 h": lambda i: get(client, "/insights/"),
        "insights, 30 d": lambda i: get(client, "/insights/?last=30d"),
        "insights, 30 d, computed (no cache)": lambda i: report(
            {**NO_FILTERS, "last": "30d"}, {"last": ["30d"]}
        ),
        "insights, 7 d LOCK_DOOR + error type": lambda i: get(
            client, "/insights/?last=7d&action_type=LOCK_DOOR&error_type=device_offline"
        ),
    }
    # The same-run baseline: a view that touches nothing, through the same client and
    # middleware (session, user), so each figure also reads as a ratio to it.
    base = timed(lambda i: get(client, "/healthz"), args.runs)
    print(
        f"  {'baseline: /healthz':38} p50 {statistics.median(base):8.1f} ms   "
        f"p95 {p95(base):8.1f} ms"
    )
    for name, call in figures.items():
        samples = timed(call, args.runs)
        target = COUNTS_P95_MS if name.startswith("counts") else PAGE_P95_MS
        print(
            f"  {name:38} p50 {statistics.median(samples):8.1f} ms   p95 {p95(samples):8.1f} ms"
            f" ({p95(samples) / p95(base):5.1f}x)"
            f"   (target p95 <= {target} ms: {verdict(p95(samples) <= target)})"
        )

    # Baseline: reading the same rows' columns from the database, without writing any CSV.
    started = time.perf_counter()
    exported = filtered_attempts({"action_type": ["SET_HVAC_MODE"]})
    read = sum(1 for _ in exported.values_list().iterator(chunk_size=2000))
    read_rate = read / (time.perf_counter() - started)
    started = time.perf_counter()
    response = client.get("/attempts/export.csv?action_type=SET_HVAC_MODE")
    rows = sum(chunk.count(b"\n") for chunk in response.streaming_content) - 1
    rate = rows / (time.perf_counter() - started)
    print(
        f"  {'CSV export (SET_HVAC_MODE)':38} {rows:,} rows, {rate:,.0f} rows/s; reading them "
        f"alone {read_rate:,.0f} rows/s ({rate / read_rate:.2f}x)"
        f"   (target >= {CSV_ROWS_PER_SECOND:,}: {verdict(rate >= CSV_ROWS_PER_SECOND)})"
    )
    export_through_gunicorn(url, args.export_rows)
    if args.prune_rows:
        webhooks_during_prune(url, args.prune_rows)


def export_through_gunicorn(url: str, rows: int) -> None:
    """The CSV export of the newest `rows` attempts (all of them if fewer) through gunicorn as
    deployed, 30 s worker timeout and all: its time, its rows per second, and whether every row
    arrived (a worker killed mid-stream cuts the file short)."""
    import httpx
    from django.contrib.auth import get_user_model
    from django.test import Client

    from attempts.models import Attempt
    from bench.webhooks import gunicorn

    newest = Attempt.objects.order_by("-first_seen_at", "-id").values_list("first_seen_at")
    oldest = newest[rows - 1 : rows].first()
    path, expected = "/attempts/export.csv", Attempt.objects.count()
    if oldest:
        path += f"?since={oldest[0].strftime('%Y-%m-%dT%H:%M:%S.%f')}"
        expected = Attempt.objects.filter(first_seen_at__gte=oldest[0]).count()
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    cookies = {"sessionid": client.cookies["sessionid"].value}
    env = {**os.environ, "DATABASE_URL": url, "WEB_CONCURRENCY": "2"}
    with tempfile.TemporaryDirectory() as tmp, gunicorn(env, Path(tmp) / "gunicorn.log") as server:
        started = time.perf_counter()
        lines = 0
        with httpx.stream("GET", server + path, cookies=cookies, timeout=60) as response:
            assert response.status_code == 200, response.status_code
            for chunk in response.iter_bytes():  # gzip, as a browser takes it
                lines += chunk.count(b"\n")
        took = time.perf_counter() - started
    got = lines - 1  # the header
    print(
        f"  {'CSV export through gunicorn':38} {got:,} of {expected:,} rows in {took:,.1f} s, "
        f"{got / took:,.0f} rows/s   (complete: {verdict(got == expected)})"
    )


def old_events(n: int) -> None:
    """n webhook events received 400 days ago, unlinked, as a year of device events would be."""
    from django.db import transaction

    from attempts.models import WebhookEvent

    at = datetime.now(UTC) - timedelta(days=400)
    batch = 10_000
    for start in range(0, n, batch):
        with transaction.atomic():
            WebhookEvent.objects.bulk_create(
                WebhookEvent(
                    event_id=f"old_{time.time_ns()}_{i}",
                    event_type="lock.locked",
                    payload={"event_type": "lock.locked", "device_id": f"d{i % 500}"},
                    received_at=at,
                    known_type=True,
                )
                for i in range(start, min(start + batch, n))
            )


def webhooks_during_prune(url: str, prune_rows: int) -> None:
    import httpx
    from standardwebhooks import Webhook

    from bench.webhooks import gunicorn

    secret = "whsec_" + "YmVuY2gtb25seS1ub3QtYS1zZWNyZXQtYXQtYWxs"
    env = {**os.environ, "DATABASE_URL": url, "SEAM_WEBHOOK_SECRET": secret, "WEB_CONCURRENCY": "2"}
    started = time.monotonic()
    old_events(prune_rows)
    print(f"  ({prune_rows:,} old webhook events added in {time.monotonic() - started:.0f} s)")
    webhook = Webhook(secret)

    def send(server: str, tag: str, stop: threading.Event, latencies: list[float]) -> None:
        n = 0
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                now = datetime.now(UTC)
                body = json.dumps(
                    {
                        "event_id": f"evt_{tag}_{n}",
                        "event_type": "action_attempt.lock_door.succeeded",
                        "action_attempt_id": f"aa_{tag}_{n}",
                        "action_type": "LOCK_DOOR",
                        "status": "success",
                        "occurred_at": now.isoformat().replace("+00:00", "Z"),
                    }
                )
                headers = {
                    "svix-id": f"m_{tag}_{n}",
                    "svix-timestamp": str(int(now.timestamp())),
                    "svix-signature": webhook.sign(f"m_{tag}_{n}", now, body),
                }
                t = time.perf_counter()
                response = http.post(f"{server}/webhooks/seam/", content=body, headers=headers)
                latencies.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200, response.text
                n += 1

    def burst(server: str, tag: str, during=None, seconds: float = 10) -> list[float]:
        stop, latencies = threading.Event(), []
        threads = [
            threading.Thread(target=send, args=(server, f"{tag}{k}", stop, latencies))
            for k in range(4)
        ]
        for thread in threads:
            thread.start()
        took = None
        if during:
            t = time.monotonic()
            during()
            took = time.monotonic() - t
        else:
            time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        return latencies, took

    def prune() -> None:
        subprocess.run(
            [sys.executable, "manage.py", "prune", "--event-days", "300"],
            cwd=BASE_DIR,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    with tempfile.TemporaryDirectory() as workdir, gunicorn(env, Path(workdir) / "g.log") as server:
        tag = f"s{time.time_ns()}"
        alone, _ = burst(server, tag + "a")
        during, took = burst(server, tag + "p", during=prune)
    p99 = {
        name: statistics.quantiles(v, n=100, method="inclusive")[98]
        for name, v in (("alone", alone), ("during", during))
    }
    ratio = p99["during"] / p99["alone"]
    print(
        f"  webhook p99 without prune {p99['alone']:.1f} ms ({len(alone):,} webhooks); during a "
        f"prune of {prune_rows:,} events ({took:.0f} s) {p99['during']:.1f} ms ({len(during):,}); "
        f"ratio {ratio:.2f} (target <= {PRUNE_P99_RATIO}: {verdict(ratio <= PRUNE_P99_RATIO)})"
    )


def main() -> int:
    args = parse_args()
    if args.one:
        run_one(args.one, args)
        return 0
    failed = 0
    for kind in args.databases:
        command = [
            sys.executable,
            __file__,
            "--one",
            kind,
            "--count",
            str(args.count),
            "--runs",
            str(args.runs),
            "--prune-rows",
            str(args.prune_rows),
            "--export-rows",
            str(args.export_rows),
            *(["--no-load"] if args.no_load else []),
            *(["--warm"] if args.warm else []),
        ]
        failed |= subprocess.run(command, cwd=BASE_DIR).returncode
    return failed


if __name__ == "__main__":
    sys.exit(main())
