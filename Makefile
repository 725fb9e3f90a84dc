# Helpline. `make run` to try it, `make test` to check it. See README.md.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# Test processes (pytest-xdist): each starts its own PostgreSQL and is handed whole modules as it finishes
# others, so a module's shared fixture (a live server, Chromium, the bench run) is built once; the modules with
# long tests come first (tests/conftest.py). PYTEST_WORKERS=0 runs in this process.
PYTEST_WORKERS ?= 2

.PHONY: run test lint bench mutation venv deps system-deps clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the dependency list changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/helpline setup
	$(BIN)/helpline serve --host $(HOST) --port $(PORT)

system-deps:
	bash scripts/ensure-system-deps

lint: $(VENV)/.installed-test
	$(BIN)/ruff check app tests bench migrations
	$(BIN)/ruff format --check app tests bench migrations
	$(BIN)/mypy app
	$(BIN)/hadolint Dockerfile

# axe-core for the accessibility checks of the browser tests (tests only; never served).
AXE := tests/e2e/.node/node_modules/axe-core/axe.min.js
$(AXE):
	npm install --prefix tests/e2e/.node --no-audit --no-fund axe-core@4.14.1

test: $(VENV)/.installed-test system-deps lint $(AXE)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

# Mutation testing of the security core (scripts/mutation.py): slow, not part of `make test`. One module at a
# time under nice; `make mutation MODULES=app/crypto/cipher.py` for a subset.
$(VENV)/.installed-mutation: pyproject.toml $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[test,mutation]'
	touch $@

mutation: $(VENV)/.installed-mutation
	$(BIN)/python scripts/mutation.py $(MODULES)

bench: $(VENV)/.installed-test system-deps
	$(BIN)/python -m bench $(if $(QUICK),--quick,)
