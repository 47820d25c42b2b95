#!/usr/bin/env bash
# `make run`: sets up and serves the dashboard on http://127.0.0.1:8000.
# With no SEAM_API_KEY (in the environment or .env) it runs in demo mode: Seam's fake server on
# 127.0.0.1:8081, and a driver that keeps attempts coming and delivers signed webhooks.
# Ctrl-C stops everything it started.
set -euo pipefail
source "$(dirname "$0")/setup.sh" requirements.txt

if [ ! -f .env ]; then
  secret=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))')
  sed "s|^SECRET_KEY=.*|SECRET_KEY=$secret|" .env.example > .env
  echo "Wrote .env with a new SECRET_KEY (edit it to configure the dashboard)."
fi

setting() {
  .venv/bin/python -c "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'dashboard.settings'); django.setup(); from django.conf import settings; print(settings.$1)"
}

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

if [ -z "$(setting SEAM_API_KEY)" ]; then
  fake_port="${FAKE_SEAM_PORT:-8081}"
  export SEAM_API_URL="http://127.0.0.1:$fake_port"
  export SEAM_API_KEY=seam_apikey1_token
  if [ -z "$(setting SEAM_WEBHOOK_SECRET)" ]; then
    SEAM_WEBHOOK_SECRET="whsec_$(.venv/bin/python -c 'import base64, os; print(base64.b64encode(os.urandom(24)).decode())')"
    export SEAM_WEBHOOK_SECRET
  fi
  echo "Demo mode: no SEAM_API_KEY, so Seam's fake server runs on $SEAM_API_URL."
  .venv/bin/python manage.py demo --fake-port "$fake_port" --dashboard-url http://127.0.0.1:8000 &
  pids+=($!)
  demo=1
fi

.venv/bin/python manage.py migrate --noinput -v0
.venv/bin/python manage.py collectstatic --noinput -v0
.venv/bin/python manage.py ensure_operator
if [ -n "${demo:-}" ]; then
  # What cron does in production (README): evaluate the alert rules every minute.
  .venv/bin/python manage.py check_alerts --every 60 &
  pids+=($!)
fi
echo "Serving on http://127.0.0.1:8000 (Ctrl-C stops)"
.venv/bin/gunicorn dashboard.wsgi --bind 127.0.0.1:8000 &
pids+=($!)
wait -n "${pids[@]}"
