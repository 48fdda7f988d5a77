# The two commands a newcomer needs: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint typecheck contracts-check unit faults install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the bus: embedded broker, router, tracker, console and simulated agencies.
up: $(STAMP)
	$(BIN)/ketenbus up --demo

## Every check: lint, format, import layers, types, contract compatibility, unit and integration tests.
test: lint typecheck contracts-check unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy contracts services

contracts-check: $(STAMP)
	$(BIN)/ketenbus contracts check

## Two workers (pytest-xdist; a file's tests on one worker, each worker with its own embedded
## broker), then one at a time what a loaded machine would make late: the `alone` tests and the
## browser's.
unit: $(STAMP)
	$(BIN)/pytest -q --numprocesses 2 --dist loadfile -m "not alone and not browser"
	$(BIN)/pytest -q -m "alone or browser"

## The fault suite at full size: 10,000 events per test (make test: 1,000, the gateway's 500), each
## test allowed 30 minutes instead of the suite's 5.
faults: $(STAMP)
	KETENBUS_FAULT_EVENTS=10000 $(BIN)/pytest -q --timeout=1800 tests/faults

clean:
	rm -rf $(VENV) .ketenbus .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
