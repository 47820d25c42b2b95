# Sourced by the other scripts: makes .venv with the given requirements file, and installs
# Seam's fake server (not with --no-fakeseam after it: `make check` needs no node). Both are
# skipped when nothing changed since the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

requirements="${1:-requirements.txt}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
stamp=".venv/.installed-$(basename "$requirements")"
if [ ! -f "$stamp" ] || [ "$requirements" -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
  touch "$stamp"
fi
if [ "${2:-}" != --no-fakeseam ] && { [ ! -f fakeseam/node_modules/.package-lock.json ] \
    || [ fakeseam/package-lock.json -nt fakeseam/node_modules/.package-lock.json ]; }; then
  npm ci --prefix fakeseam --no-audit --no-fund --silent
fi
