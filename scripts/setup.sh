# Sourced by the other scripts: makes .venv with the given requirements file, and installs
# Seam's fake server (not with --no-fakeseam after it: `make check` needs no node) and, for the
# tests, testing/node's tools. Each is skipped when nothing changed since the last install.
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
# The tests' own node tools (an OpenID provider, axe-core), with the dev requirements only.
if [ "$requirements" = requirements-dev.txt ] && { [ ! -f testing/node/node_modules/.package-lock.json ] \
    || [ testing/node/package-lock.json -nt testing/node/node_modules/.package-lock.json ]; }; then
  npm ci --prefix testing/node --no-audit --no-fund --silent
fi
