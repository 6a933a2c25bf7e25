# The whole set-up on a fresh machine is `make run` or `make test`.
# Stamps make repeated runs cheap: installs re-run only when their inputs change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMPS := .make-stamps
CONFIG ?= supervisor.yaml

.PHONY: install run test lint typecheck pytest bench clean

install: $(STAMPS)/python $(STAMPS)/node

$(STAMPS)/python: pyproject.toml
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

$(STAMPS)/node: node_mcp/package.json node_mcp/package-lock.json
	@mkdir -p $(STAMPS)
	cd node_mcp && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: install
	$(BIN)/watchgate up --foreground -c $(CONFIG)

lint: $(STAMPS)/python
	$(BIN)/ruff check watchgate actors tests
	$(BIN)/ruff format --check watchgate actors tests

typecheck: $(STAMPS)/python
	$(BIN)/mypy --strict watchgate actors

pytest: install
	$(BIN)/python -m pytest -W error --cov --cov-report=term

test: lint typecheck pytest

# Not a test: a ~3 minute measurement, direct vs through the gateway (docs/performance.md).
# FastMCP, the peer measured alongside, is an optional extra installed here on demand.
bench: install
	$(BIN)/python -c 'import fastmcp' 2>/dev/null || $(BIN)/python -m pip install --quiet 'fastmcp>=2'
	$(BIN)/python -m watchgate.bench --json bench-results.json

clean:
	rm -rf $(VENV) $(STAMPS) node_mcp/node_modules .coverage .coverage.* .pytest_cache .mypy_cache .ruff_cache
