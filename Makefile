# Two commands on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# npm tools of the ledger: anvil (an EVM JSON-RPC node) and solc-js (the Solidity compiler).
TOOLS := .tools
TOOLS_STAMP := $(TOOLS)/.installed

.PHONY: run test lint typecheck bench conformance clean install tools

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(TOOLS_STAMP):
	@if command -v npm >/dev/null 2>&1; then \
		npm install --prefix $(TOOLS) --no-audit --no-fund --silent @foundry-rs/anvil@1.7.1 solc@0.8.37 \
		&& touch $(TOOLS_STAMP) \
		|| echo "warning: npm install failed: the ledger tests that need anvil or solc-js will be skipped"; \
	else \
		echo "warning: npm not found: the ledger tests that need anvil or solc-js will be skipped"; \
	fi

tools: $(TOOLS_STAMP)

run: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/csp run

test: $(STAMP) $(TOOLS_STAMP)
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
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache build *.egg-info
