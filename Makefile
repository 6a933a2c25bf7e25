# The whole set-up on a fresh machine is `make run` or `make test`.
# What gets installed is exactly the lock files: uv.lock (Python), node_mcp/package-lock.json (node),
# tools/uv-requirements.txt (uv itself, by hash). `make lock` refreshes uv.lock on purpose (ADR-017).
# Stamps make repeated runs cheap: installs re-run only when their inputs change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
STAMPS := .make-stamps
CONFIG ?= supervisor.yaml

# uv never fetches an interpreter of its own: the venv is built on $(PYTHON), and only from the lock.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
UV_SYNC := $(UV) sync --frozen --python $(PYTHON) --quiet

.PHONY: install run test lint typecheck pytest bench lock clean

install: $(STAMPS)/python $(STAMPS)/node

# uv bootstrapped with pip from a hash-pinned requirement; --isolated ignores machine-wide pip config.
$(UV): tools/uv-requirements.txt
	@echo "make: bootstrapping uv (pinned by hash) into $(TOOLS)"
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --isolated --quiet --disable-pip-version-check \
		--require-hashes --no-deps -r tools/uv-requirements.txt
	@touch $@

$(STAMPS)/python: pyproject.toml uv.lock $(UV)
	@mkdir -p $(STAMPS)
	@echo "make: installing the locked Python packages into $(VENV) (the first time takes a minute)"
	$(UV_SYNC) --extra test
	@touch $@

$(STAMPS)/node: node_mcp/package.json node_mcp/package-lock.json
	@mkdir -p $(STAMPS)
	@echo "make: installing node 22 and the MCP reference servers into node_mcp/ (locked)"
	cd node_mcp && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: install
	$(BIN)/watchgate up --foreground -c $(CONFIG)

lint: $(STAMPS)/python
	$(UV) lock --check --quiet  # uv.lock still matches pyproject.toml (else: make lock)
	$(BIN)/ruff check watchgate actors tests
	$(BIN)/ruff format --check watchgate actors tests
	$(BIN)/lint-imports --no-cache  # the import rules of docs/development/design.md §11 (pyproject.toml)

typecheck: $(STAMPS)/python
	$(BIN)/mypy --strict watchgate actors

pytest: install
	$(BIN)/python -m pytest -W error --numprocesses 2 --cov --cov-report=term

test: lint typecheck pytest

# Re-resolve every Python dependency (runtime, test, bench) to the newest versions pyproject.toml
# allows. Review the diff of uv.lock and commit it on its own: a refresh is a decision.
lock: $(UV)
	$(UV) lock --upgrade

# Not a test: a ~4 minute measurement, direct vs through the gateway (docs/performance.md).
# The peers measured alongside: FastMCP is the locked `bench` extra; Gatekit gets a venv of its
# own from a hash-pinned requirements file (its dependencies would fight Watchgate's lock).
GATEKIT := .bench-peers/gatekit

$(STAMPS)/gatekit: tools/gatekit-requirements.txt $(UV)
	@mkdir -p $(STAMPS)
	rm -rf $(GATEKIT)
	$(UV) venv --quiet --python $(PYTHON) $(GATEKIT)
	VIRTUAL_ENV=$(GATEKIT) $(UV) pip install --quiet --require-hashes --no-deps -r tools/gatekit-requirements.txt
	@touch $@

bench: install $(STAMPS)/gatekit
	$(UV_SYNC) --extra test --extra bench
	@command -v wrk >/dev/null || apt-get install -y --no-install-recommends wrk >/dev/null 2>&1 \
		|| echo "wrk could not be installed (apt-get install wrk): the HTTP floor rows are skipped"
	$(BIN)/python -m watchgate.bench --json bench-results.json

clean:
	rm -rf $(VENV) $(TOOLS) $(STAMPS) .bench-peers node_mcp/node_modules .coverage .coverage.* .pytest_cache .mypy_cache .ruff_cache
