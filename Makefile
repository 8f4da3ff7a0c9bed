# Two commands on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench conformance clean install tools

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/csp run

# Debian kcat for the guide's kcat steps (tests/channels/test_kafka_guide.py skips them without it)
tools:
	@command -v kcat >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && command -v flock >/dev/null 2>&1 && \
		flock /tmp/apt.lock sh -c 'apt-get update -qq && apt-get install -y -qq kcat' >/dev/null 2>&1; } || \
		echo "kcat not installed (apt-get install kcat): the guide's kcat steps will be skipped"

test: $(STAMP) tools
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy .

bench: $(STAMP)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/check.py

conformance: $(STAMP)
	$(BIN)/python bench/conformance.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build *.egg-info
