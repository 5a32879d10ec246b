# garmin-sync: the two commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run serve test lint sandbox migrate bench clean

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

## lint: ruff and mypy
lint: $(VENV)/.installed
	$(BIN)/ruff check service tests migrations
	$(BIN)/mypy

## sandbox: the Garmin sandbox on :9090 with the example accounts
sandbox: $(VENV)/.installed
	$(BIN)/garmin-sync sandbox --port 9090 --seed examples/sandbox-seed.yaml

migrate: $(VENV)/.installed
	$(BIN)/garmin-sync migrate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
