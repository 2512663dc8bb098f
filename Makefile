# gridmap: two commands on a fresh Debian/Ubuntu machine.
#   make serve   set up everything, load the sample district, serve http://127.0.0.1:8000
#   make test    the same set-up, then lint and the whole test suite against a real PostGIS
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: serve test lint test-unit test-db test-api test-browser test-faults fuzz-redraw screenshots install postgis chromium nginx pgbouncer db \
	sample bench bench-locate bench-split bench-tiles bench-mixed bench-index bench-city clean

# the test suite's parts, fastest first: unit needs no PostGIS and runs in seconds
TEST_PARTS := tests/unit tests/db tests/api tests/browser tests/faults

install: $(BIN)/gridmap

$(BIN)/gridmap: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 is missing: apt-get install python3 python3-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { echo "venv failed: apt-get install python3-venv"; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

# PostGIS for the embedded cluster (skipped when DATABASE_URL points elsewhere).
postgis:
	@if [ -n "$$DATABASE_URL" ]; then exit 0; fi; \
	if ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing PostgreSQL 15 + PostGIS 3 with apt"; \
		apt-get update -q && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15-postgis-3 \
			|| DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-postgis; }; \
	else \
		echo "PostGIS is missing. Install it with:"; \
		echo "  sudo apt-get update && sudo apt-get install -y postgresql-15-postgis-3"; \
		echo "(on Ubuntu: sudo apt-get install -y postgresql-postgis)"; \
		echo "or run one in Docker (docker compose up -d db) and set"; \
		echo "  DATABASE_URL=postgresql://gridmap:gridmap@127.0.0.1:5432/gridmap"; \
		exit 1; \
	fi

# Chromium for the map tests (tests/browser/ drive it through Playwright), with a CJK font
# so the screenshots they save show the Chinese names.
chromium:
	@if [ -x /usr/bin/chromium ] && fc-list :lang=zh 2>/dev/null | grep -q .; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing Chromium and a CJK font with apt"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-wqy-microhei; \
	else \
		echo "Chromium is missing (the map tests need it). Install it with:"; \
		echo "  sudo apt-get update && sudo apt-get install -y chromium fonts-wqy-microhei"; \
		exit 1; \
	fi

# A tool from Debian a test runs in a folder of its own, never as a service: RUNLEVEL=1 keeps the
# package from starting one. $(call debian_tool,command,package,what needs it)
define debian_tool
	@if command -v $(1) >/dev/null || [ -x /usr/sbin/$(1) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing $(2) with apt"; \
		apt-get update -q && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2); \
	else \
		echo "$(2) is missing ($(3)). Install it with:"; \
		echo "  sudo apt-get update && sudo apt-get install -y $(2)"; \
		exit 1; \
	fi
endef

# nginx for the scaled layout's test (tests/api/test_scaled_layout.py): app instances behind it, tiles cached
nginx:
	$(call debian_tool,nginx,nginx,the scaled layout's test needs it)

# pgbouncer for the connection-pooler test (tests/api/test_pgbouncer.py): the app through it in transaction mode
pgbouncer:
	$(call debian_tool,pgbouncer,pgbouncer,the connection-pooler test needs it)

db: install postgis
	@if [ -z "$$DATABASE_URL" ]; then $(BIN)/gridmap db start; fi

serve: db
	$(BIN)/gridmap init
	$(BIN)/gridmap serve --host $(HOST) --port $(PORT)

test: db chromium nginx pgbouncer lint
	$(BIN)/pytest -q $(TEST_PARTS)

# the rules of docs/architecture.md: layers and cycles (import-linter), style and complexity (ruff), types (mypy)
lint: install
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/mypy

test-unit: install
	$(BIN)/pytest -q tests/unit

test-db: db
	$(BIN)/pytest -q tests/db

test-api: db nginx pgbouncer
	$(BIN)/pytest -q tests/api

test-browser: db chromium
	$(BIN)/pytest -q tests/browser

test-faults: db
	$(BIN)/pytest -q tests/faults

# the redraw fuzzer run long (make test runs 60 changes): FUZZ_REDRAW_STEPS seeded changes
# (FUZZ_REDRAW_SEED), an invariant check after every commit, then the summary (tests/faults/test_redraw_fuzz.py)
FUZZ_REDRAW_STEPS ?= 500
fuzz-redraw: db
	FUZZ_REDRAW_STEPS=$(FUZZ_REDRAW_STEPS) $(BIN)/pytest -q -s tests/faults/test_redraw_fuzz.py

# the README's pictures of the maps, taken by the browser tests
screenshots: db chromium
	GRIDMAP_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/browser/test_maps.py

sample: install
	$(BIN)/gridmap sample --seed 7 --output data/boundaries/sample-district.gpkg

bench: db
	$(BIN)/python bench/bench_load.py

# point-in-grid on a 65,000-grid city (first run generates and loads it: ~10 min; needs wrk)
bench-locate: db
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q wrk; } || { echo "install wrk: sudo apt-get install wrk"; exit 1; }
	$(BIN)/python bench/bench_locate.py

# the point index following commits on the same city: per-commit update against a full build, lookups
# under a commit every 30 s, worker memory over 50 commits (~8 min once the city is loaded)
bench-index: db
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q wrk; } || { echo "install wrk: sudo apt-get install wrk"; exit 1; }
	$(BIN)/python bench/bench_index.py

# the soak: the same city for 10 minutes, 50 clients mixing lookups, tiles, intake and statistics, a
# commit every 30 s; p99 per route, worker memory, errors, lost incidents (not in CI)
bench-city: db
	$(BIN)/python bench/bench_city.py

# vector tiles on the same city (reuses bench-locate's database, or generates and loads it: ~10 min)
bench-tiles: db
	$(BIN)/python bench/bench_tiles.py

# 50 clients mixing locate, incident intake and stats for 60 s while a planner commits a split and a
# merge, with the checks (errors, lost incidents, torn reads), beside the same mix without commits (~4 min)
bench-mixed: db
	$(BIN)/python bench/bench_mixed.py

# split planner vs spopt's max-p on the same instances, and the OSM Guanggu run (no database)
bench-split: install
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/bench_split.py

clean:
	-$(BIN)/gridmap db stop
	rm -rf $(VENV) .gridmap
