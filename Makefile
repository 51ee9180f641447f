# The two quickstart commands: `make run` (start the mock) and `make test` (the whole suite).
# Each creates .venv when missing and reinstalls only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint format audit bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/rokt-mock serve $(ARGS)

test: $(STAMP) lint audit
	bash .ci/install-browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Dependency audit of .venv (runtime + dev): a known vulnerability with a fixed release fails,
# one without a fix warns, an unreachable vulnerability service warns LOUDLY (policy: .ci/audit.py).
audit: $(STAMP)
	$(BIN)/python .ci/audit.py

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	bash bench/run

clean:
	rm -rf $(VENV) .rokt-mock build dist .pytest_cache .ruff_cache .hypothesis
