#!/usr/bin/env bash
# `make test`: installs everything the tests need on a fresh machine, then runs the whole
# suite twice, side by side: on the embedded defaults (SQLite, database cache), and on
# PostgreSQL + Redis.
set -euo pipefail
source "$(dirname "$0")/setup.sh" requirements-dev.txt

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v nginx >/dev/null || need_apt+=(nginx)
command -v openssl >/dev/null || need_apt+=(openssl)  # the nginx test's TLS certificate
command -v prometheus >/dev/null || need_apt+=(prometheus)  # /metrics scraped, promtool checks
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# This machine kind starts PostgreSQL and Redis; start them if they are not up.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi

.venv/bin/ruff format --check .
.venv/bin/ruff check .
DEBUG= SECRET_KEY=check .venv/bin/python manage.py check
DEBUG= SECRET_KEY=check .venv/bin/python manage.py makemigrations --check --dry-run >/dev/null

# Pages name hashed files from collectstatic's manifest: collected once here, as the two passes
# below would otherwise each rewrite it (delete, then write) under the other's servers.
DEBUG= SECRET_KEY=check .venv/bin/python manage.py collectstatic --noinput -v0
export DASHBOARD_STATIC_COLLECTED=1

# The two passes run side by side, one per core: most of a pass's time is spent waiting (on
# servers, browsers, timeouts), and they share nothing but the static files collected above
# (their own databases and caches; every server on a port it asks the kernel for).
logs="$(mktemp -d)"
# Ending early (Ctrl-C, a CI timeout) ends both passes too, once they have stopped their servers.
trap 'kill $(jobs -p) 2>/dev/null || true; wait; rm -rf "$logs"' EXIT
trap 'exit 130' INT TERM
.venv/bin/pytest "$@" >"$logs/sqlite" 2>&1 &
sqlite=$!
DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dashboard}" \
CACHE_URL="${TEST_CACHE_URL:-redis://127.0.0.1:6379/1}" \
  .venv/bin/pytest "$@" >"$logs/postgres" 2>&1 &
postgres=$!
sqlite_rc=0 postgres_rc=0
wait "$sqlite" || sqlite_rc=$?
echo "== tests on SQLite and the database cache"
cat "$logs/sqlite"
wait "$postgres" || postgres_rc=$?
echo "== tests on PostgreSQL and Redis"
cat "$logs/postgres"
[ "$sqlite_rc" -eq 0 ] && [ "$postgres_rc" -eq 0 ]
