# garmin-sync: the two commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run serve test lint sandbox migrate bench replicas config-doc clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "garmin-sync needs Python >= 3.11 (found $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || $(PYTHON) -m virtualenv $(VENV) || \
		{ echo "cannot create a virtualenv: install python3-venv (Debian: apt-get install python3-venv)"; exit 1; }

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@

## run: install, apply migrations and serve on SQLite at http://$(HOST):$(PORT)
run: $(VENV)/.installed
	$(BIN)/garmin-sync migrate
	$(BIN)/garmin-sync serve --host $(HOST) --port $(PORT)

serve: run

## test: install and run the whole suite (PostgreSQL too when GARMIN_SYNC_TEST_DATABASE_URL is set)
test: $(VENV)/.installed
	$(BIN)/pytest -q

## replicas: three replicas + the sandbox as processes on one PostgreSQL database, 300 users,
## one replica SIGKILLed mid-run (~2 min; prints what it measured). Creates the database
## when missing; override with GARMIN_SYNC_TEST_DATABASE_URL=postgres://user@host:port/db
REPLICAS_DB ?= postgres://postgres@127.0.0.1:5432/garmin_sync_replicas
replicas: $(VENV)/.installed
	@url="$${GARMIN_SYNC_TEST_DATABASE_URL:-$(REPLICAS_DB)}"; name="$${url##*/}"; \
	psql "$$url" -Atc 'select 1' >/dev/null 2>&1 || \
		psql "$${url%/*}/postgres" -c "create database \"$${name%%\?*}\"" || \
		{ echo "cannot reach or create $$url (PostgreSQL running? psql installed?)"; exit 1; }; \
	GARMIN_SYNC_TEST_DATABASE_URL="$$url" $(BIN)/pytest -q tests/production/test_three_replicas.py

## lint: ruff, mypy and the import contracts (pyproject.toml [tool.importlinter])
lint: $(VENV)/.installed
	$(BIN)/ruff check service tests migrations bench
	$(BIN)/mypy
	$(BIN)/lint-imports

## sandbox: the Garmin sandbox on :9090 with the example accounts
sandbox: $(VENV)/.installed
	$(BIN)/garmin-sync sandbox --port 9090 --seed examples/sandbox-seed.yaml

migrate: $(VENV)/.installed
	$(BIN)/garmin-sync migrate

## config-doc: regenerate docs/configuration.md and config.yaml from service/config.py
config-doc: $(VENV)/.installed
	$(BIN)/garmin-sync config-doc > docs/configuration.md
	$(BIN)/garmin-sync config-doc --yaml > config.yaml

## bench: the benchmark suite (9-12 minutes on 2 cores with PostgreSQL; --quick is shorter; needs
## >= 2 cores); prints a table, writes each figure's results to bench/results/ and rebuilds
## BENCHMARKS.md and its charts from them. PostgreSQL figures too when
## GARMIN_SYNC_TEST_DATABASE_URL is set (its tables are emptied).
## Options: make bench BENCH_ARGS="--figures 1,5 --users 1000 --quick"
BENCH_ARGS ?=
$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	@touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
