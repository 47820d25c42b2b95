"""The webhook's write path as written (attempts/rows.py, the rollups' own upserts) next to the
same path through the ORM (bench/orm_write_path.py), side by side in one run.

For each database kind (SQLite, PostgreSQL): two fresh migrated databases, and on each gunicorn
as deployed (gunicorn.conf.py, 2 sync workers): one serving the app (`rows`), one serving
bench.orm_wsgi (`orm`). Then rounds in which each server takes a wrk burst against /healthz and
one of distinct signed webhooks (bench/webhooks.py's), the two servers taking turns to go first,
so a neighbour's load hits both alike. Prints every round's figures and the medians: webhooks/s,
/healthz req/s, their ratio, and ORM/rows, the ORM's webhooks/s over the current code's in the
same round (and the same of their ratios to /healthz). Then, for each server, the rows: every
acknowledged event stored once, and every attempt counted once in each rollup table.

The issue's rule: rows.py and the rollup SQL builder stay only if the ORM costs the webhook more
than 15 % of its rate (ORM/rows under 0.85) on SQLite or PostgreSQL.

    .venv/bin/python bench/write_path.py [--rounds 3] [--seconds 5] [--databases sqlite postgres]
"""

import argparse
import base64
import os
import statistics
import sys
from contextlib import ExitStack, closing
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.webhooks import (  # noqa: E402
    checked,
    connect,
    consistent,
    database,
    gunicorn,
    migrated,
    options,
    run_wrk,
    scratch_dir,
    webhook_round,
)

# Each variant's WSGI application, served by its own gunicorn.
VARIANTS = {"rows": "dashboard.wsgi", "orm": "bench.orm_wsgi"}
BENCH_DB = "bench_write_path"
# The threshold: the ORM may cost the webhook at most this share of its rate.
MAX_COST = 0.15
ROLLUP_TABLES = (
    "attempts_hourlycount",
    "attempts_dailycount",
    "attempts_hourlyresolution",
    "attempts_dailyresolution",
)


def rollup_sums(url: str) -> list[int]:
    """What each rollup table counts in all: each bench event is a new attempt that ended."""
    sums = ", ".join(
        f"(SELECT coalesce(sum(count), 0) FROM {table})"  # noqa: S608 - names only
        for table in ROLLUP_TABLES
    )
    with closing(connect(url)) as conn:
        return [int(total) for total in conn.execute(f"SELECT {sums}").fetchone()]


def bench(kind: str, args: argparse.Namespace, workdir: Path) -> dict:
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    rounds: dict[str, list[tuple[dict, dict]]] = {variant: [] for variant in VARIANTS}
    acked: dict[str, list[str]] = {variant: [] for variant in VARIANTS}
    with ExitStack() as databases:
        urls = {
            v: databases.enter_context(database(kind, workdir, f"{BENCH_DB}_{v}")) for v in VARIANTS
        }
        with ExitStack() as running:
            servers = {}
            for variant, app in VARIANTS.items():
                env = migrated(urls[variant], secret)
                log = workdir / f"gunicorn-{kind}-{variant}.log"
                servers[variant] = running.enter_context(gunicorn(env, log, app))
            warm = argparse.Namespace(**{**vars(args), "seconds": 2})
            for server in servers.values():
                run_wrk(server, warm, "healthz")
            for n in range(args.rounds):
                order = list(VARIANTS) if n % 2 == 0 else list(reversed(VARIANTS))
                for variant in order:
                    healthz = run_wrk(servers[variant], args, "healthz")
                    hooks, round_acked = webhook_round(
                        servers[variant], args, workdir, secret, f"{kind}{variant}{n}"
                    )
                    acked[variant] += round_acked
                    rounds[variant].append((healthz, hooks))
                print_round(kind, n, rounds)
        return {
            "rounds": rounds,
            "stored": {v: checked(urls[v], acked[v], rounds[v]) for v in VARIANTS},
            "rollups": {v: rollup_sums(urls[v]) for v in VARIANTS},
        }


def figures(pair: tuple[dict, dict]) -> tuple[float, float, float]:
    """webhooks/s, /healthz req/s and their ratio, of one (healthz, webhooks) round."""
    healthz, hooks = pair
    return hooks["per_second"], healthz["per_second"], hooks["per_second"] / healthz["per_second"]


def describe(name: str, rate: float, healthz: float, ratio: float) -> str:
    return f"{name} {rate:.0f} webhooks/s, /healthz {healthz:.0f} req/s, ratio {ratio:.3f}"


def print_round(kind: str, n: int, rounds: dict[str, list[tuple[dict, dict]]]) -> None:
    rows, orm = figures(rounds["rows"][n]), figures(rounds["orm"][n])
    print(
        f"{kind} round {n + 1}: {describe('rows', *rows)} | {describe('orm', *orm)} | "
        f"ORM/rows {orm[0] / rows[0]:.3f} (of the ratios {orm[2] / rows[2]:.3f})",
        flush=True,
    )


def summarize(kind: str, result: dict) -> bool:
    """Prints the medians, the verdict and the stored rows' checks; whether they hold."""
    median = statistics.median
    per_round = {v: [figures(pair) for pair in result["rounds"][v]] for v in VARIANTS}
    medians = {v: [median(column) for column in zip(*per_round[v], strict=True)] for v in VARIANTS}
    pairs = list(zip(per_round["rows"], per_round["orm"], strict=True))
    by_rate = median([orm[0] / rows[0] for rows, orm in pairs])
    by_ratio = median([orm[2] / rows[2] for rows, orm in pairs])
    print(
        f"{kind} median: {describe('rows', *medians['rows'])} | "
        f"{describe('orm', *medians['orm'])} | ORM/rows {by_rate:.3f} "
        f"(of the ratios {by_ratio:.3f})"
    )
    costs = [1 - by_rate, 1 - by_ratio]
    verdict = (
        "over"
        if min(costs) > MAX_COST
        else "within"
        if max(costs) <= MAX_COST
        else "on either side of"
    )
    print(
        f"  the ORM costs the webhook {costs[0]:.0%} of its rate ({costs[1]:.0%} against "
        f"/healthz): {verdict} the {MAX_COST:.0%} threshold"
    )
    ok = True
    for variant in VARIANTS:
        stored = result["stored"][variant]
        print(f"  {variant}:", end="")
        ok = consistent(stored) and ok
        sums = result["rollups"][variant]
        print(f"    rollups count {sums} attempts ({', '.join(ROLLUP_TABLES)})")
        if any(total != stored["attempts"] for total in sums):
            print(f"  INCONSISTENT: {variant}'s rollups miscount", file=sys.stderr)
            ok = False
    return ok


def main() -> int:
    args = options(__doc__.split("\n")[0])
    ok = True
    with scratch_dir("bench-write-path-", args.keep) as tmp:
        for kind in args.databases:
            ok = summarize(kind, bench(kind, args, tmp)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
