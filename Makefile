# The two commands a newcomer needs, and the benchmarks.
.PHONY: run check test bench lint

run:  ## set up and serve the dashboard on http://127.0.0.1:8000 (demo mode without SEAM_API_KEY)
	@bash scripts/run.sh

check:  ## the quick tier, under a minute: lint, Django's checks, every test needing only SQLite
	@bash scripts/check.sh

test:  ## set up and run every test, on SQLite and on PostgreSQL + Redis
	@bash scripts/test.sh

bench:  ## the benchmarks under bench/ (not part of `make test`)
	@bash scripts/bench.sh

lint:
	@.venv/bin/ruff format --check . && .venv/bin/ruff check .
