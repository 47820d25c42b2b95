#!/usr/bin/env bash
# `make bench`: the benchmarks under bench/. Each prints its figures and the ratios against a
# baseline measured in the same run. Not part of `make test`.
set -euo pipefail
source "$(dirname "$0")/setup.sh" requirements-dev.txt

echo "== the attempts list at a million attempts (SQLite), next to Django's admin"
mkdir -p bench/results
.venv/bin/python bench/dashboard.py --db bench/results/attempts-1m.sqlite3
echo "== the attempts list with its rendered-row cache warm and cold, same database"
.venv/bin/python bench/list_cold.py --db bench/results/attempts-1m.sqlite3

echo "== at scale: list, counts, id search, insights, CSV, webhooks during prune (SQLite, PostgreSQL)"
.venv/bin/python bench/scale.py --count "${SCALE_COUNT:-10000000}"
echo "== live pages: a poll's server cost at a million attempts, then 20 browser windows under webhooks"
.venv/bin/python bench/live.py --db bench/results/attempts-1m.sqlite3

echo "== the audit admin's list pages at a million rows (SQLite), next to a stock ModelAdmin"
.venv/bin/python bench/admin.py

echo "== the alert rules' queries at a million attempts (SQLite), next to a lookup by id"
.venv/bin/python bench/alerts.py

echo "== sync_attempts: batched refresh against one Seam call per attempt (Seam's fake server)"
.venv/bin/python bench/sync.py

echo "== the Seam webhook receiver under a burst (wrk), next to /healthz, on SQLite and PostgreSQL"
if ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
.venv/bin/python bench/webhooks.py
echo "== the webhook's write path as written next to the same through the ORM, side by side (SQLite, PostgreSQL)"
.venv/bin/python bench/write_path.py
