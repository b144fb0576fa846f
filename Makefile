# The two commands: `make run` (local stack + Dagster UI, data flowing) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint docs-keys ui-check smoke-bigquery bench bench-decode-process bench-latency bench-backfill bench-cost bench-routing bench-window clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install only when the project's dependencies change.
$(VENV)/.installed-local: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-local

$(VENV)/.installed-ui: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local,ui]'
	touch $@

run: $(VENV)/.installed-local
	$(BIN)/cwl-pipeline dev

# `dg check defs`: every defs.yaml against its component's schema, then the definitions loaded as
# `dg dev` loads them (the bundled local config, which needs no server to load).
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	CWL_PIPELINE_CONFIG=cwl_pipeline/pipeline.local.yaml $(BIN)/dg check defs
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Opens the UI of `make run` (running in another terminal) in headless Chromium (Debian package
# `chromium`) and checks its main views; screenshots in .ui-check/.
UI_URL ?= http://127.0.0.1:3000
ui-check: $(VENV)/.installed-ui
	$(BIN)/python tools/ui_check.py --url $(UI_URL) $(UI_ARGS)

# The key reference (docs/config-keys.md), written from the config sections.
docs-keys: $(VENV)/.installed-test
	$(BIN)/python -m cwl_pipeline.config_reference > docs/config-keys.md

# Opt-in, not part of `make test`: every statement shape of the load path, one Storage Write
# append and every load check against a REAL project (Application Default Credentials), then its
# datasets dropped; PASS/FAIL per step. CWL_SMOKE_PROJECT is required; CWL_SMOKE_LOCATION (US),
# CWL_SMOKE_DATASET_PREFIX (cwl_smoke). SMOKE_ARGS="--endpoint URL --storage-write-endpoint
# HOST:PORT" points it at an emulator instead. See docs/deployment.md.
smoke-bigquery: $(VENV)/.installed-local
	$(BIN)/python tools/smoke_bigquery.py $(SMOKE_ARGS)

# Decode throughput (about a minute). The end-to-end benchmarks start their own local stack:
# bench-latency runs both live paths (the live sensor and the refresh runs) side by side for 10
# minutes at the local settings, then 3 at the production defaults, about 20 minutes in all
# (BENCH_ARGS="--minutes 1 --production-minutes 0" for a quick check),
# bench-backfill loads one million events (BENCH_ARGS="--events 100000").
bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/decode.py

# The whole `cwl-pipeline decode` process on a 400,000-event Firehose object against the
# per-event loop it replaces, in turn (about a minute; BENCH_ARGS="--runs 3 --workers 1").
bench-decode-process: $(VENV)/.installed-test
	$(BIN)/python benchmarks/decode_process.py $(BENCH_ARGS)

bench-latency: $(VENV)/.installed-test
	$(BIN)/python benchmarks/latency.py $(BENCH_ARGS)

bench-backfill: $(VENV)/.installed-test
	$(BIN)/python benchmarks/backfill.py $(BENCH_ARGS)

# BigQuery bill and quota use of one stream's simulated day (BENCH_ARGS="--hours 2" for a quick look).
# bench-window loads one Firehose delivery window of 5 million events (BENCH_ARGS="--events 500000").
bench-window: $(VENV)/.installed-test
	$(BIN)/python benchmarks/window.py $(BENCH_ARGS)

bench-cost: $(VENV)/.installed-test
	$(BIN)/python benchmarks/cost.py $(BENCH_ARGS)

# 200 log groups through one Firehose prefix, routed to five tables: events/s and API calls per
# delivery window, and the sensor's listing per tick (BENCH_ARGS="--events 20000" for a quick look).
bench-routing: $(VENV)/.installed-test
	$(BIN)/python benchmarks/routing.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .local_data
