"""The attempts list with and without its rendered-row cache, next to a stock ModelAdmin.

bench/dashboard.py times each page 40 times over, so after the first request every row comes
from the per-process cache of rendered rows. This times the same pages both ways: warm (as
there) and cold (the row cache emptied before every request: a page nobody viewed since its
rows changed), on the same database and in the same run.

    .venv/bin/python bench/list_cold.py --db path/to/bench.sqlite3   # loaded by dashboard.py
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.dashboard import logged_in, p95  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--db", help="a database loaded by bench/dashboard.py, reused")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-list-cold-"))
    db_path = Path(args.db or workdir / "bench.sqlite3").resolve()
    client = logged_in(db_path, workdir / "static", args.count)
    from attempts import fragments

    def timed(url: str, cold: bool, runs: int) -> list[float]:
        client.get(url)
        samples = []
        for _ in range(runs):
            if cold:
                fragments._row_fragments.clear()
            started = time.perf_counter()
            assert client.get(url).status_code == 200
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    baseline = statistics.median(timed("/plain-admin/attempts/attempt/", False, args.runs // 2))
    print(f"stock ModelAdmin changelist        p50 {baseline:6.1f} ms (the baseline)")
    for name, url in [
        ("first page", "/attempts/"),
        ("LOCK_DOOR + error", "/attempts/?action_type=LOCK_DOOR&status=error"),
        (
            "pending or error, 3 types",
            "/attempts/?status=pending&status=error"
            "&action_type=LOCK_DOOR&action_type=UNLOCK_DOOR&action_type=SET_HVAC_MODE",
        ),
    ]:
        for cold in (False, True):
            samples = timed(url, cold, args.runs)
            p50 = statistics.median(samples)
            print(
                f"{name:26} {'cold' if cold else 'warm'}   p50 {p50:6.1f} ms   "
                f"p95 {p95(samples):6.1f} ms   {baseline / p50:5.1f}x the stock ModelAdmin"
            )


if __name__ == "__main__":
    main()
