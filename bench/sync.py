"""What batching buys the reconciliation: Seam calls and time, against one call per attempt.

Against Seam's fake server on loopback, with N attempts the dashboard knows as pending (half of
them ended on Seam in error, half in success), in one run on a fresh SQLite database: the
baseline, one /action_attempts/get per attempt (as Seam's SDK polls); the client's batched list
of the same ids; then `manage.py sync_attempts`, which fetches them in batches of 500 and merges
each one. Loopback hides network latency: against the real API each call costs a round trip.

    .venv/bin/python bench/sync.py [--attempts 2000]
"""

import argparse
import os
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

import httpx  # noqa: E402

from fakeseam import API_KEY, FakeSeam  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=2000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir, FakeSeam() as seam:
        os.environ.update(
            DATABASE_URL=f"sqlite:///{Path(workdir) / 'bench.sqlite3'}",
            SECRET_KEY="bench-only",  # noqa: S106 - a throwaway database
            SEAM_API_URL=seam.url,
            SEAM_API_KEY=API_KEY,
            LOG_LEVEL="WARNING",
        )
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
        import django

        django.setup()
        from django.core.management import call_command

        from attempts.merge import Observation, merge
        from attempts.models import Attempt, Source
        from seam.client import get_client

        call_command("migrate", verbosity=0)
        print(f"Creating {args.attempts} attempts on the fake server...")
        ids = []
        for i in range(args.attempts):
            attempt = seam.lock_door() if i % 2 else seam.unlock_door()
            ids.append(attempt["action_attempt_id"])
            if i % 2 == 0:
                error = {"type": "device_offline", "message": "The lock is offline"}
                seam.set_attempt(ids[-1], "error", error=error)
            merge(ids[-1], Observation("pending"), source=Source.WEBHOOK)

        # Counts every request the dashboard's clients send to Seam in this process.
        calls = {"n": 0}
        send = httpx.Client.send

        def counted(self, request, **kwargs):
            if request.url.path.startswith(("/action_attempts/", "/events/")):
                calls["n"] += 1
            return send(self, request, **kwargs)

        httpx.Client.send = counted
        client = get_client()
        started = time.perf_counter()
        for action_attempt_id in ids:
            client.get(action_attempt_id)
        baseline = time.perf_counter() - started
        baseline_calls, calls["n"] = calls["n"], 0
        started = time.perf_counter()
        client.list(ids)
        listed = time.perf_counter() - started
        list_calls, calls["n"] = calls["n"], 0

        out = StringIO()
        started = time.perf_counter()
        call_command("sync_attempts", stdout=out)
        synced = time.perf_counter() - started
        sync_calls = calls["n"]
        ended = Attempt.objects.exclude(status="pending").filter(payload_fetched=True).count()

    print(out.getvalue().strip())
    print(
        f"one get per attempt (baseline, fetch only): {baseline:.2f} s, {baseline_calls} calls,"
        f" {args.attempts / baseline:.0f} attempts/s"
    )
    print(
        f"batched list (fetch only): {listed:.2f} s, {list_calls} calls,"
        f" {args.attempts / listed:.0f} attempts/s; ratio {baseline / listed:.1f}x the baseline"
    )
    print(
        f"sync_attempts (fetch and merge): {synced:.2f} s, {sync_calls} calls,"
        f" {args.attempts / synced:.0f} attempts/s; ended with payload: {ended}/{args.attempts}"
    )


if __name__ == "__main__":
    main()
