"""What keeping open pages live costs, and how soon a new attempt shows in them.

Part `poll`: the server cost of one live list's poll, in-process (Django's test client, logged
in), at a million attempts on SQLite: nothing new, one new attempt, 20 changed rows; p50/p95
next to /healthz timed in the same run.

Part `browsers`: 20 real browser windows (Playwright, Debian's chromium), half on /attempts/,
half on /attempts/?action_type=LOCK_DOOR, against gunicorn as deployed (2 workers, SQLite),
while signed webhooks for new attempts arrive at 5 per second for 60 s. For each webhook and
each window that should show it: the delay from the webhook's 2xx to its row in the window
(p50/p95/max); the polls per window per interval; the CPU seconds the gunicorn workers spent per
minute (from /proc). At SEAM_POLL_SECONDS 3 and 1.

    .venv/bin/python bench/live.py [--part poll browsers] [--db path/to/1m.sqlite3]
"""

import argparse
import base64
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.dashboard import logged_in, p95  # noqa: E402
from bench.webhooks import gunicorn_process  # noqa: E402

TARGET_POLL_P95_MS = 5
TARGET_EXTRA_DELAY = 0.5  # seconds past the interval
TARGET_REQUESTS_PER_INTERVAL = 1.05


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", default=["poll", "browsers"])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200, help="timed polls per case")
    parser.add_argument("--db", help="keep the million-attempt database here, reused")
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=float, default=5, help="webhooks per second")
    parser.add_argument("--intervals", type=int, nargs="+", default=[3, 1])
    return parser.parse_args()


def line(name: str, samples: list[float], baseline: float | None = None) -> str:
    p50 = statistics.median(samples)
    text = f"  {name:28} p50 {p50:6.2f} ms   p95 {p95(samples):6.2f} ms"
    if baseline:
        text += f"   {p50 / baseline:5.1f}x /healthz"
    return text


def bench_poll(args: argparse.Namespace, workdir: Path) -> None:
    db_path = Path(args.db).resolve() if args.db else workdir / "bench.sqlite3"
    client = logged_in(db_path, workdir / "static", args.count)
    from django.utils import timezone

    from attempts.counts import attempt_stats
    from attempts.listing import list_page
    from attempts.merge import Observation, merge
    from attempts.models import Attempt, Source
    from attempts.recorded import newest_pk
    from pages.fragments import stats_version
    from pages.templatetags.attempt_tags import version

    print(f"\n{Attempt.objects.count():,} attempts in {db_path} (SQLite), {args.runs} polls each")
    htmx = {"HX-Request": "true"}

    def page_state() -> dict:
        rows = list_page({}).rows
        return {
            "v": [f"{a.pk}.{version(a)}" for a in rows],
            "newest": newest_pk(),
            "seam": "off",
            "stats": stats_version(attempt_stats({}, 15)),
            "rows": rows,
        }

    def timed(prepare) -> list[float]:
        samples = []
        for n in range(args.runs + 5):
            params = prepare()
            started = time.perf_counter()
            response = client.get("/attempts/poll/", params, headers=htmx)
            took = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.status_code
            if n >= 5:
                samples.append(took)
        return samples

    def healthz() -> list[float]:
        samples = []
        for _ in range(args.runs):
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    def nothing_new() -> dict:
        state = page_state()
        return {k: v for k, v in state.items() if k != "rows"}

    seq = iter(range(10**9))

    def one_new() -> dict:
        params = nothing_new()
        obs = Observation(status="pending", action_type="LOCK_DOOR")
        merge(f"aa_bench_live_{time.time_ns()}_{next(seq)}", obs, source=Source.WEBHOOK)
        return params

    def twenty_changed() -> dict:
        state = page_state()
        changed = [a.pk for a in state["rows"][:20]]
        Attempt.objects.filter(pk__in=changed).update(updated_at=timezone.now())
        return {k: v for k, v in state.items() if k != "rows"}

    # The case and the baseline alternate, so a neighbour's load hits both alike.
    results: dict[str, list[float]] = {"/healthz": []}
    for name, prepare in [
        ("poll, nothing new", nothing_new),
        ("poll, one new attempt", one_new),
        ("poll, 20 changed rows", twenty_changed),
    ]:
        results["/healthz"] += healthz()
        results[name] = timed(prepare)
    baseline = statistics.median(results["/healthz"])
    print(line("/healthz (baseline)", results["/healthz"]))
    for name, samples in results.items():
        if name != "/healthz":
            met = "ok" if p95(samples) <= TARGET_POLL_P95_MS else "MISSED"
            print(line(name, samples, baseline) + f"   target p95 <= {TARGET_POLL_P95_MS} ms {met}")


def cpu_seconds(master_pid: int) -> float:
    """User + system CPU seconds of the gunicorn master's children (its workers) so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def sign(webhook, n: int, run: str) -> tuple[str, dict[str, str], str]:
    action = "lock_door" if n % 2 == 0 else "unlock_door"
    now = datetime.now(UTC)
    at = now.isoformat().replace("+00:00", "Z")
    attempt_id = f"aa_{run}_{n}"
    body = json.dumps(
        {
            "event_id": f"evt_{run}_{n}",
            "event_type": f"action_attempt.{action}.succeeded",
            "action_attempt_id": attempt_id,
            "action_type": action.upper(),
            "status": "success",
            "workspace_id": "ws_bench",
            "created_at": at,
            "occurred_at": at,
        }
    )
    msg_id = f"msg_{run}_{n}"
    headers = {
        "svix-id": msg_id,
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": webhook.sign(msg_id, now, body),
        "content-type": "application/json",
    }
    return attempt_id, headers, body


# Each window notes when each row first appears in its list: (attempt id, epoch ms).
WATCH_ROWS = """
window.seen = [];
new MutationObserver(() => {
  const now = Date.now();
  document.querySelectorAll("#attempt-rows tr[id] td.id a").forEach(a => {
    if (!a.dataset.seen) { a.dataset.seen = "1"; window.seen.push([a.textContent, now]); }
  });
}).observe(document, {childList: true, subtree: true});
"""


def bench_browsers(args: argparse.Namespace, workdir: Path, interval: int) -> None:
    import httpx
    from playwright.sync_api import sync_playwright
    from standardwebhooks import Webhook

    from testing.browser import CHROMIUM_ARGS

    db = workdir / f"browsers-{interval}.sqlite3"
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "DEBUG": "false",
        "SEAM_WEBHOOK_SECRET": secret,
        "SEAM_API_KEY": "",
        "SEAM_POLL_SECONDS": str(interval),
        "WEB_CONCURRENCY": "2",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("CACHE_URL", None)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True)
    subprocess.run([*manage, "load_attempts", "10000"], cwd=BASE_DIR, env=env, check=True)
    user_script = (
        "from django.contrib.auth.models import User;"
        "from django.contrib.sessions.backends.db import SessionStore;"
        "u, _ = User.objects.get_or_create(username='bench');"
        "s = SessionStore(); s['_auth_user_id'] = str(u.pk);"
        "s['_auth_user_backend'] = 'django.contrib.auth.backends.ModelBackend';"
        "s['_auth_user_hash'] = u.get_session_auth_hash(); s.create(); print(s.session_key)"
    )
    session = subprocess.run(
        [*manage, "shell", "-c", user_script],
        cwd=BASE_DIR,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    with gunicorn_process(env, workdir / f"gunicorn-{interval}.log") as (url, server):
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_cookies([{"name": "sessionid", "value": session, "url": url}])
            context.add_init_script(WATCH_ROWS)
            windows = []
            for n in range(args.windows):
                filtered = n % 2 == 1
                page = context.new_page()
                polls: list[float] = []
                page.on(
                    "request",
                    lambda r, polls=polls: "/attempts/poll/" in r.url and polls.append(time.time()),
                )
                page.goto(f"{url}/attempts/" + ("?action_type=LOCK_DOOR" if filtered else ""))
                windows.append((page, filtered, polls))

            webhook = Webhook(secret)
            acked: dict[str, tuple[float, bool]] = {}
            errors = []
            run = secrets.token_hex(3)

            def deliver() -> None:
                with httpx.Client(base_url=url, timeout=10) as http:
                    started = time.monotonic()
                    for n in range(int(args.seconds * args.rate)):
                        time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
                        attempt_id, headers, body = sign(webhook, n, run)
                        response = http.post("/webhooks/seam/", content=body, headers=headers)
                        if response.is_success:
                            acked[attempt_id] = (time.time(), n % 2 == 0)
                        else:
                            errors.append(response.status_code)

            cpu_before, wall_before = cpu_seconds(server.pid), time.time()
            sender = threading.Thread(target=deliver)
            sender.start()
            # Playwright's objects belong to this thread: keep its event loop turning.
            while sender.is_alive():
                windows[0][0].wait_for_timeout(200)
            # Time for the last rows to show, even in a browser the machine's load slows down.
            windows[0][0].wait_for_timeout(max(3 * interval + 2, 15) * 1000)
            cpu = cpu_seconds(server.pid) - cpu_before
            wall = time.time() - wall_before

            delays, missing, wrong = [], 0, 0
            requests_per_interval, gaps = [], []
            for page, filtered, polls in windows:
                seen = {aid: at / 1000 for aid, at in page.evaluate("window.seen")}
                for attempt_id, (at, is_lock) in acked.items():
                    should = is_lock or not filtered
                    if attempt_id in seen and not should:
                        wrong += 1
                    elif should and attempt_id not in seen:
                        missing += 1
                    elif should:
                        delays.append(seen[attempt_id] - at)
                during = [t for t in polls if wall_before <= t <= wall_before + wall]
                requests_per_interval.append(len(during) / (wall / interval))
                gaps.extend(b - a for a, b in zip(during, during[1:], strict=False))
            browser.close()
    delays.sort()
    q95 = statistics.quantiles(delays, n=20, method="inclusive")[18] if len(delays) > 1 else 0
    worst_rate = max(requests_per_interval)
    print(
        f"\nSEAM_POLL_SECONDS={interval}: {len(acked)} webhooks acknowledged ({len(errors)} not),"
        f" {args.windows} windows, {wall:.0f} s"
    )
    print(
        f"  delay webhook 2xx -> row shown: p50 {statistics.median(delays):.2f} s"
        f"  p95 {q95:.2f} s  max {max(delays):.2f} s  (n={len(delays)}, missing {missing},"
        f" shown where they should not be {wrong})"
        f"  target p95 <= {interval + TARGET_EXTRA_DELAY} s"
        f" {'ok' if q95 <= interval + TARGET_EXTRA_DELAY else 'MISSED'}"
    )
    print(
        f"  polls per window per interval: mean {statistics.mean(requests_per_interval):.3f}"
        f"  max {worst_rate:.3f}  target <= {TARGET_REQUESTS_PER_INTERVAL}"
        f" {'ok' if worst_rate <= TARGET_REQUESTS_PER_INTERVAL else 'MISSED'}"
    )
    # A browser slowed by the machine polls late: its delays show it.
    print(f"  longest gap between a window's polls: {max(gaps):.1f} s (interval {interval} s)")
    print(
        f"  gunicorn workers' CPU: {cpu / wall * 60:.1f} s per minute ({cpu:.1f} s in {wall:.0f} s)"
    )


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-live-"))
    try:
        if "poll" in args.part:
            bench_poll(args, workdir)
        if "browsers" in args.part:
            for interval in args.intervals:
                bench_browsers(args, workdir, interval)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
