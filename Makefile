# salesmesh: `make demo` runs the app with demo data on SQLite; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
DEMO_INSTANCE ?= $(CURDIR)/instance
DEMO_PORT ?= 5000
DEMO_DB := $(DEMO_INSTANCE)/demo.db
DEMO_ENV := SALESMESH_DEMO=1 SALESMESH_INSTANCE_PATH=$(DEMO_INSTANCE) SALESMESH_DATABASE_URL=sqlite:///$(DEMO_DB)
PYTEST_ARGS ?=

.PHONY: demo test bench lint fmt install clean-demo

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@mkdir -p $(DEMO_INSTANCE)
	$(DEMO_ENV) $(BIN)/salesmesh db upgrade
	$(DEMO_ENV) $(BIN)/salesmesh demo seed
	$(DEMO_ENV) $(BIN)/salesmesh run --host 127.0.0.1 --port $(DEMO_PORT)

clean-demo:
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm

test: $(STAMP)
	@bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks run --json bench-results.json

lint: $(STAMP)
	$(BIN)/ruff check salesmesh tests benchmarks migrations
	$(BIN)/ruff format --check salesmesh tests benchmarks migrations

fmt: $(STAMP)
	$(BIN)/ruff format salesmesh tests benchmarks migrations
