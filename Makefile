# garmin-sync: the two commands of the README are `make run` and `make test`.
# Dependencies come from the hashed locks in requirements/ (`make lock` refreshes them from
# pyproject.toml): `run` installs the runtime lock only, `test` and `lint` the test lock.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TOOLS  ?= .venv-tools
SANDBOX_PORT ?= 9090

# --host/--port only when HOST/PORT were given, so GARMIN_SYNC_HTTP_* and config.yaml
# decide otherwise
SERVE_ARGS = $(if $(filter undefined,$(origin HOST)),,--host $(HOST)) \
             $(if $(filter undefined,$(origin PORT)),,--port $(PORT))

.PHONY: run serve test lint sandbox migrate bench replicas config-doc clean lock lock-check \
	image-check compose-check

RUNTIME = $(VENV)/.installed-runtime
TESTENV = $(VENV)/.installed-test
# an extra's lock (requirements/bench.txt, once pyproject.toml declares a `bench` extra)
# installs on top of the test venv
extra = $(if $(wildcard requirements/$(1).txt),$(VENV)/.installed-$(1))

# $(VENV)/.installed-NAME: the venv holds requirements/NAME.txt and the project
$(VENV)/.installed-%: requirements/%.txt requirements/build.txt pyproject.toml
	@PYTHON=$(PYTHON) deploy/venv.sh $(VENV) requirements/$*.txt --project

$(TOOLS)/.installed-tools: requirements/tools.txt
	@PYTHON=$(PYTHON) deploy/venv.sh $(TOOLS) requirements/tools.txt

## run: install, apply migrations and serve (config.yaml: SQLite on http://127.0.0.1:8080;
## make run PORT=9000 HOST=0.0.0.0 overrides the address)
run: $(RUNTIME)
	$(BIN)/garmin-sync migrate
	$(BIN)/garmin-sync serve $(strip $(SERVE_ARGS))

serve: run

## test: install and run the whole suite (PostgreSQL too when GARMIN_SYNC_TEST_DATABASE_URL is set)
test: $(TESTENV)
	$(BIN)/pytest -q

## replicas: three replicas + the sandbox as processes on one PostgreSQL database, 300 users,
## one replica SIGKILLed mid-run (~2 min; prints what it measured). Creates the database
## when missing; override with GARMIN_SYNC_TEST_DATABASE_URL=postgres://user@host:port/db
REPLICAS_DB ?= postgres://postgres@127.0.0.1:5432/garmin_sync_replicas
replicas: $(TESTENV)
	@url="$${GARMIN_SYNC_TEST_DATABASE_URL:-$(REPLICAS_DB)}"; name="$${url##*/}"; \
	psql "$$url" -Atc 'select 1' >/dev/null 2>&1 || \
		psql "$${url%/*}/postgres" -c "create database \"$${name%%\?*}\"" || \
		{ echo "cannot reach or create $$url (PostgreSQL running? psql installed?)"; exit 1; }; \
	GARMIN_SYNC_TEST_DATABASE_URL="$$url" $(BIN)/pytest -q tests/production/test_three_replicas.py

## lint: ruff, mypy and the import contracts (pyproject.toml [tool.importlinter])
lint: $(TESTENV)
	$(BIN)/ruff check service tests migrations bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports

## sandbox: the Garmin sandbox on :$(SANDBOX_PORT) (SANDBOX_PORT=9090) with the example accounts
sandbox: $(RUNTIME)
	$(BIN)/garmin-sync sandbox --port $(SANDBOX_PORT) --seed examples/sandbox-seed.yaml

migrate: $(RUNTIME)
	$(BIN)/garmin-sync migrate

## config-doc: regenerate docs/configuration.md and config.yaml from service/config.py
config-doc: $(RUNTIME)
	$(BIN)/garmin-sync config-doc > docs/configuration.md
	$(BIN)/garmin-sync config-doc --yaml > config.yaml

## bench: the benchmark suite (11-15 minutes on 2 cores with PostgreSQL; --quick is shorter; needs
## >= 2 cores); prints a table, writes each figure's results to bench/results/ and rebuilds
## BENCHMARKS.md and its charts from them. PostgreSQL figures too when
## GARMIN_SYNC_TEST_DATABASE_URL is set (its tables are emptied).
## Options: make bench BENCH_ARGS="--figures 1,5 --users 1000 --quick" (--engines garth,di: the
## Garmin engines of figures 3 and 4, both by default)
BENCH_ARGS ?=
bench: $(TESTENV) $(call extra,bench)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## lock: recompile requirements/*.txt from pyproject.toml, keeping the pins it allows;
## make lock UPGRADE=1 moves every pin to the newest release, UPGRADE=aiohttp only that one
UPGRADE ?=
lock: $(TOOLS)/.installed-tools
	PYTHON=$(PYTHON) UV=$(abspath $(TOOLS))/bin/uv deploy/lock.sh $(if $(filter 1,$(UPGRADE)),--upgrade,$(foreach p,$(UPGRADE),--upgrade-package $(p)))

## lock-check: fail when pyproject.toml and requirements/ disagree (asks PyPI, a few seconds)
lock-check: $(TOOLS)/.installed-tools
	PYTHON=$(PYTHON) UV=$(abspath $(TOOLS))/bin/uv deploy/lock.sh --check

## image-check: build the image and prove it with real containers (podman; not part of CI)
image-check: $(RUNTIME)
	deploy/image-check.sh

## compose-check: deploy/compose.yaml up with podman-compose, checked, then removed (after
## image-check, whose image it uses; not part of CI)
compose-check:
	deploy/compose-check.sh

clean:
	rm -rf $(VENV) $(TOOLS) $(VENV).lock $(TOOLS).lock .pytest_cache .mypy_cache .ruff_cache \
		.import_linter_cache
