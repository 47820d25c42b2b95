"""The alert rules' queries at a million attempts, next to a trivial indexed query.

Loads N attempts (`load_attempts`, first seen over 4 weeks) and as many webhook events (one in
ten recorded from Seam's event list, so without a Svix id) into a database kept between runs,
then times each default rule's query (`alerts.rules.findings`, as `check_alerts` runs it) and one
whole evaluation, next to a baseline measured in the same run: one attempt looked up by its
unique id. Prints p50/p95 and each rule's ratio to the baseline's p50, and the query plans.

    .venv/bin/python bench/alerts.py [--count 1000000] [--db path.sqlite3 | --database-url URL]
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

TARGET_MS = 50

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--count", type=int, default=1_000_000)
parser.add_argument("--runs", type=int, default=50)
parser.add_argument("--db", help="SQLite file to keep the data in (default: in the temp dir)")
parser.add_argument("--database-url", help="a PostgreSQL database to load instead (not shared)")
args = parser.parse_args()

db = args.db or str(Path(tempfile.gettempdir()) / f"dashboard-bench-alerts-{args.count}.sqlite3")
os.environ.update(
    DATABASE_URL=args.database_url or f"sqlite:///{db}",
    CACHE_URL="locmemcache://",
    SECRET_KEY="bench-only-not-a-secret",  # noqa: S106 - a throwaway database
    DEBUG="false",
    # Set, so the Seam rule reads its state from the cache; nothing here calls Seam.
    SEAM_API_KEY="seam_bench_unused",
    ALERT_URLS="",
    LOG_LEVEL="WARNING",
    DJANGO_SETTINGS_MODULE="dashboard.settings",
)

import django  # noqa: E402

django.setup()

from datetime import timedelta  # noqa: E402

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Max  # noqa: E402
from django.utils import timezone  # noqa: E402

from alerts.evaluation import evaluate  # noqa: E402
from alerts.models import Kind, Rule  # noqa: E402
from alerts.rules import FIND  # noqa: E402
from attempts.models import Attempt, WebhookEvent  # noqa: E402


def load() -> None:
    call_command("migrate", verbosity=0)
    have = Attempt.objects.count()
    if have < args.count:
        print(f"Loading {args.count - have:,} attempts…", flush=True)
        call_command("load_attempts", args.count - have, seed=1, verbosity=0)
    events = WebhookEvent.objects.count()
    if events < args.count:
        print(f"Loading {args.count - events:,} webhook events…", flush=True)
        now = timezone.now()
        span = timedelta(weeks=4).total_seconds()
        start = (WebhookEvent.objects.aggregate(n=Max("id"))["n"] or 0) + 1
        for base in range(start, start + args.count - events, 5000):
            WebhookEvent.objects.bulk_create(
                WebhookEvent(
                    event_id=f"evt_bench_{i}",
                    event_type="action_attempt.lock_door.succeeded",
                    payload={"event_id": f"evt_bench_{i}"},
                    svix_id="" if i % 10 == 0 else f"msg_{i}",
                    received_at=now - timedelta(seconds=(i * 7919 % 1_000_003) / 1_000_003 * span),
                )
                for i in range(base, min(base + 5000, start + args.count - events))
            )
    with connection.cursor() as cursor:
        # As autovacuum leaves a loaded table: statistics, and PostgreSQL's visibility map, which
        # lets a count read the index alone.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")


def timed(fn, runs: int) -> tuple[float, float]:
    fn()  # warm
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def plans(rule: Rule, now) -> list[str]:
    """The plan of each query the rule runs, as the database gives it."""
    from django.db import connection as conn

    found = []
    with conn.execute_wrapper(
        lambda execute, sql, params, many, context: (
            found.append((sql, params)) or execute(sql, params, many, context)
        )
    ):
        FIND[rule.kind](rule, now)
    lines = []
    for sql, params in found:
        prefix = "EXPLAIN QUERY PLAN " if conn.vendor == "sqlite" else "EXPLAIN "
        with conn.cursor() as cursor:
            cursor.execute(prefix + sql, params)
            lines += [" | ".join(str(c) for c in row) for row in cursor.fetchall()]
    return lines


def main() -> None:
    load()
    Rule.objects.filter(kind=Kind.ERROR_TYPE).update(
        enabled=True, error_types="lock_jammed,low_battery,device_offline"
    )
    now = timezone.now()
    total = Attempt.objects.count()
    window = Attempt.objects.filter(ended_at__gte=now - timedelta(minutes=15)).count()
    print(
        f"{connection.vendor}: {total:,} attempts, {WebhookEvent.objects.count():,} events;"
        f" {window} attempts ended in the last 15 min"
    )
    some_id = Attempt.objects.order_by("-id").values_list("action_attempt_id", flat=True)[0]
    base50, base95 = timed(
        lambda: Attempt.objects.filter(action_attempt_id=some_id).exists(), args.runs
    )
    print(f"{'baseline: one attempt by its id':42} p50 {base50:7.2f} ms  p95 {base95:7.2f} ms")
    worst = 0.0
    for rule in Rule.objects.order_by("kind"):
        p50, p95 = timed(lambda rule=rule: FIND[rule.kind](rule, timezone.now()), args.runs)
        worst = max(worst, p95)
        print(
            f"{'rule ' + rule.kind:42} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms"
            f"  ({p50 / base50:5.1f}x baseline p50)"
        )
    p50, p95 = timed(evaluate, max(5, args.runs // 5))
    print(f"{'a whole evaluation (check_alerts)':42} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")
    print(
        f"worst rule p95 {worst:.2f} ms: {'within' if worst < TARGET_MS else 'OVER'} {TARGET_MS} ms"
    )
    for rule in Rule.objects.order_by("kind"):
        for line in plans(rule, timezone.now()):
            print(f"  plan {rule.kind}: {line}")


main()
