# Engram: `make run` starts everything, `make test` checks everything. Both set up .venv first.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_DATA := $(abspath ../shared/data)
# Offline by design: model weights ship in a package, tiktoken files come from ../shared in tests.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
TEST_ENV := TIKTOKEN_CACHE_DIR=$(SHARED_DATA)/tiktoken DEBUG=1

.PHONY: help setup run test lint typecheck pytest bench eval fuzz chaos clean chromium

help:
	@echo "make run    set up, start embedded Redis + server + worker on http://127.0.0.1:8000/"
	@echo "make test   set up, then ruff, mypy and pytest"
	@echo "make bench  benchmarks (results in BENCHMARKS.md and bench/results/)"
	@echo "make fuzz   10,000+ hostile frames and requests against a live server"
	@echo "make chaos  workers and Redis SIGKILLed under load: is anything lost, does it heal"

setup: $(STAMP)

# pip's file:// extra indexes on these machines print a warning per package; hide only those lines.
PIP := $(BIN)/pip install --quiet --disable-pip-version-check
FILTER_PIP := sed '/is ignored: it is neither a file nor a directory/d'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing dependencies into $(VENV) (first run takes a few minutes)…"
	@# The CPU build of torch first, so sentence-transformers does not pull the CUDA one.
	@$(PIP) torch==2.13.0 2>&1 | $(FILTER_PIP)
	@$(PIP) -c constraints.txt -e ".[dev]" 2>&1 | $(FILTER_PIP)
	@touch $@

run: $(STAMP)
	@DEBUG=$${DEBUG:-1} $(BIN)/python manage.py run_engram

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(TEST_ENV) $(BIN)/lint-imports

typecheck: $(STAMP)
	$(TEST_ENV) $(BIN)/mypy .

# Browser tests drive Debian's chromium through Playwright (never a downloaded browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests…"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# pytest-xdist: one worker per core (PYTEST_WORKERS=0 runs the tests in this process). Each worker
# has its own session fixtures (embedded Redis, test database, servers); a file's tests stay on one
# worker so a module can share one live server (tests/fixtures_browser.py::shared_live_url). Files go
# out in collection order: xdist's default (most tests first) left the browser files, few tests but
# slow ones, for the end, with one worker idle while the other ran them.
PYTEST_WORKERS ?= auto
pytest: $(STAMP) chromium
	$(TEST_ENV) $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: lint typecheck pytest

bench: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m bench

# Hostile frames and requests against a live server (also part of `make bench`).
fuzz: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m bench --only fuzz

# Worker and redis-server SIGKILLs under load (also part of `make bench`).
chaos: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m bench --only chaos

eval: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m bench.eval

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
