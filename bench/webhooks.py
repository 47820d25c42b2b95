"""How many verified, stored Seam webhook events per second gunicorn takes, as deployed.

For each database (SQLite, PostgreSQL): a fresh migrated database, gunicorn with the project's
gunicorn.conf.py (2 sync workers), then rounds of `wrk` (bench/webhooks.lua) against /healthz, a
view that touches nothing, and against /webhooks/seam/ with distinct events signed just before
each round. It prints the medians over the rounds, then counts the rows: every acknowledged event
stored, none twice.

    .venv/bin/python bench/webhooks.py [--rounds 3] [--seconds 5] [--databases sqlite postgres]
"""

import argparse
import base64
import json
import os
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from standardwebhooks import Webhook

BASE_DIR = Path(__file__).resolve().parent.parent
LUA = BASE_DIR / "bench" / "webhooks.lua"
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BENCH_DB = "bench_webhooks"
# More pre-signed events than the server could take in the run, so none is sent twice.
MAX_EVENTS_PER_SECOND = 6000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def database(kind: str, workdir: Path, name: str = BENCH_DB):
    """A fresh, empty database of that kind, dropped afterwards; yields its URL."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'{name}.sqlite3'}"
        return
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def migrated(url: str, secret: str) -> dict[str, str]:
    """Migrates the database at `url`; returns the environment gunicorn serves it with."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": secrets.token_urlsafe(40),
        "DEBUG": "false",
        "SEAM_WEBHOOK_SECRET": secret,
        "SEAM_API_KEY": "",
        "WEB_CONCURRENCY": "2",
    }
    env.pop("CACHE_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=BASE_DIR,
        env=env,
        check=True,
    )
    return env


@contextmanager
def gunicorn_process(env: dict[str, str], log_path: Path, app: str = "dashboard.wsgi"):
    """gunicorn as deployed on a free port, answering /healthz: yields its URL and process."""
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", app, "--config", "gunicorn.conf.py"],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def gunicorn(env: dict[str, str], log_path: Path, app: str = "dashboard.wsgi"):
    with gunicorn_process(env, log_path, app) as (url, _):
        yield url


def sign_events(path: Path, count: int, secret: str, run: str) -> None:
    """Writes `count` distinct deliveries, each of a new attempt, signed now."""
    webhook = Webhook(secret)
    now = datetime.now(UTC)
    timestamp = str(int(now.timestamp()))
    occurred_at = now.isoformat().replace("+00:00", "Z")
    kinds = [("lock_door", "succeeded", "success"), ("unlock_door", "failed", "error")]
    with open(path, "w") as out:
        for i in range(count):
            action, outcome, status = kinds[i % 2]
            body = json.dumps(
                {
                    "event_id": f"evt_{run}_{i}",
                    "event_type": f"action_attempt.{action}.{outcome}",
                    "action_attempt_id": f"aa_{run}_{i}",
                    "action_type": action.upper(),
                    "status": status,
                    "workspace_id": "ws_bench",
                    "created_at": occurred_at,
                    "occurred_at": occurred_at,
                }
            )
            msg_id = f"msg_{run}_{i}"
            signature = webhook.sign(msg_id, now, body)
            out.write(f"{msg_id}\t{timestamp}\t{signature}\t{body}\n")


def run_wrk(url: str, args: argparse.Namespace, *lua_args: str, env: dict | None = None) -> dict:
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
        "--",
        *lua_args,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    output = done.stdout
    if done.returncode or "RESULT " not in output:
        raise RuntimeError(f"wrk failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    [line] = [line for line in output.splitlines() if line.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    result["per_second"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def webhook_round(
    server: str, args: argparse.Namespace, workdir: Path, secret: str, run: str
) -> tuple[dict, list[str]]:
    """One wrk round of new events signed now, named after `run`: its result and the
    acknowledged event ids."""
    events_path = workdir / f"events-{run}.tsv"
    sign_events(events_path, MAX_EVENTS_PER_SECOND * args.seconds, secret, run)
    acked_path = workdir / f"acked-{run}.txt"
    hooks = run_wrk(
        server,
        args,
        "webhooks",
        str(events_path),
        str(args.threads),
        env={"BENCH_ACKED": str(acked_path)},
    )
    return hooks, acked_path.read_text().split()


def connect(url: str) -> sqlite3.Connection | psycopg.Connection:
    """A plain connection to the database at `url`, outside Django."""
    if url.startswith("sqlite"):
        return sqlite3.connect(url.removeprefix("sqlite:///"))
    return psycopg.connect(url)


def stored(url: str) -> dict:
    queries = {
        "events": "SELECT count(*) FROM attempts_webhookevent",
        "distinct_events": "SELECT count(DISTINCT event_id) FROM attempts_webhookevent",
        "attempts": "SELECT count(*) FROM attempts_attempt",
        "changes": "SELECT count(*) FROM attempts_statuschange",
        "unlinked": "SELECT count(*) FROM attempts_webhookevent WHERE attempt_id IS NULL",
    }
    conn = connect(url)
    try:
        counts = {name: conn.execute(sql).fetchone()[0] for name, sql in queries.items()}
        ids = {row[0] for row in conn.execute("SELECT event_id FROM attempts_webhookevent")}
    finally:
        conn.close()
    return {**counts, "ids": ids}


def bench(kind: str, args: argparse.Namespace, workdir: Path) -> dict:
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    with database(kind, workdir) as url:
        env = migrated(url, secret)
        rounds = []
        acked: list[str] = []
        with gunicorn(env, workdir / f"gunicorn-{kind}.log") as server:
            run_wrk(server, argparse.Namespace(**{**vars(args), "seconds": 2}), "healthz")
            # Baseline and webhooks alternate, so a neighbour's load hits both alike.
            for n in range(args.rounds):
                healthz = run_wrk(server, args, "healthz")
                hooks, round_acked = webhook_round(server, args, workdir, secret, f"{kind}{n}")
                acked += round_acked
                rounds.append((healthz, hooks))
        stored_rows = checked(url, acked, rounds)
    median = statistics.median

    return {
        "database": kind,
        "healthz_per_second": median([h["per_second"] for h, _ in rounds]),
        "events_per_second": median([w["per_second"] for _, w in rounds]),
        "events_per_second_all": [round(w["per_second"]) for _, w in rounds],
        "p50_ms": median([w["p50_us"] / 1000 for _, w in rounds]),
        "p99_ms": median([w["p99_us"] / 1000 for _, w in rounds]),
        "p99_ms_worst": max(w["p99_us"] / 1000 for _, w in rounds),
        "healthz_p99_ms": median([h["p99_us"] / 1000 for h, _ in rounds]),
        "ratio": median([w["per_second"] / h["per_second"] for h, w in rounds]),
        **stored_rows,
    }


def checked(url: str, acked: list[str], rounds: list[tuple[dict, dict]]) -> dict:
    """The rows stored against the events acknowledged in these (healthz, webhooks) rounds."""
    counts = stored(url)
    return {
        "acknowledged": len(acked),
        "stored": counts["events"],
        "lost": len(set(acked) - counts["ids"]),
        "doubled": counts["events"] - counts["distinct_events"] + (len(acked) - len(set(acked))),
        "attempts": counts["attempts"],
        "history_rows": counts["changes"],
        "unlinked": counts["unlinked"],
        "rejected": sum(w["rejected"] + w["non_2xx_3xx"] for _, w in rounds),
        "answered_duplicate": sum(w["duplicates"] for _, w in rounds),
        "socket_errors": sum(h["socket_errors"] + w["socket_errors"] for h, w in rounds),
        "overflow": sum(w["overflow"] for _, w in rounds),
    }


def consistent(r: dict) -> bool:
    """Prints checked()'s counts; whether every acknowledged event was stored once, alone."""
    print(
        f"  acknowledged {r['acknowledged']}, stored {r['stored']}, lost {r['lost']}, "
        f"doubled {r['doubled']}, attempts {r['attempts']}, history rows "
        f"{r['history_rows']}, events without attempt {r['unlinked']}, rejected "
        f"{r['rejected']}, socket errors {r['socket_errors']}, unsent overflow "
        f"{r['overflow']}"
    )
    ok = (
        r["lost"] == r["doubled"] == r["unlinked"] == r["rejected"] == 0
        and r["stored"] == r["attempts"] == r["history_rows"]
        and r["answered_duplicate"] == r["overflow"] == 0
    )
    if not ok:
        print("  INCONSISTENT: see the counts above", file=sys.stderr)
    return ok


def options(description: str) -> argparse.Namespace:
    """The command line of a wrk benchmark; exits if wrk is missing."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seconds", type=int, default=5, help="per round and endpoint")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--keep", action="store_true", help="keep the logs and databases")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk)")
    return args


@contextmanager
def scratch_dir(prefix: str, keep: bool):
    """A fresh temporary folder for the logs and SQLite databases, removed unless `keep`."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        yield Path(tmp)
    finally:
        if keep:
            print(f"logs and databases kept in {tmp}")
        else:
            shutil.rmtree(tmp)


def main() -> int:
    args = options(__doc__.split("\n")[0])
    ok = True
    with scratch_dir("bench-webhooks-", args.keep) as tmp:
        for kind in args.databases:
            r = bench(kind, args, tmp)
            print(
                f"webhooks {r['database']}: {r['events_per_second']:.0f} events/s "
                f"(rounds {r['events_per_second_all']}; p50 {r['p50_ms']:.1f} ms, "
                f"p99 {r['p99_ms']:.1f} ms, worst round {r['p99_ms_worst']:.1f} ms); "
                f"/healthz {r['healthz_per_second']:.0f} req/s (p99 {r['healthz_p99_ms']:.1f} ms); "
                f"ratio {r['ratio']:.3f}"
            )
            ok = consistent(r) and ok
            if r["database"] == "sqlite" and (r["events_per_second"] < 1000 or r["p99_ms"] >= 50):
                print("  below target: 1,000 events/s with p99 < 50 ms on SQLite", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
