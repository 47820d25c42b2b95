#!/usr/bin/env bash
# `make check`: the quick tier, for the edit-run loop. Lint, Django's checks, and every test that
# needs nothing beyond Python and SQLite: no browser, gunicorn, node, PostgreSQL, Redis, nginx or
# prometheus, and none of the slow ones (the markers in pyproject.toml). It installs no Debian
# package. `make test` runs everything.
set -euo pipefail
SECONDS=0
source "$(dirname "$0")/setup.sh" requirements-dev.txt --no-fakeseam

.venv/bin/ruff format --check .
.venv/bin/ruff check .
DEBUG= SECRET_KEY=check .venv/bin/python manage.py check
DEBUG= SECRET_KEY=check .venv/bin/python manage.py makemigrations --check --dry-run >/dev/null

quick="not (browser or gunicorn or seam or postgres or redis or nginx or prometheus or slow)"
# On SQLite and the database cache, whatever a .env names.
DATABASE_URL="sqlite:///$PWD/db.sqlite3" CACHE_URL="dbcache://dashboard_cache" \
  .venv/bin/pytest -m "$quick" "$@"
echo "make check: passed in ${SECONDS} s"
