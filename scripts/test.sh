#!/usr/bin/env bash
# `make test`: installs everything the tests need on a fresh machine, then runs the whole
# suite twice: on the embedded defaults (SQLite, database cache), and on PostgreSQL + Redis.
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

echo "== tests on SQLite and the database cache"
.venv/bin/pytest "$@"
echo "== tests on PostgreSQL and Redis"
DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dashboard}" \
CACHE_URL="${TEST_CACHE_URL:-redis://127.0.0.1:6379/1}" \
  .venv/bin/pytest "$@"
