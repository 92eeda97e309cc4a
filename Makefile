# churnrisk — the README's commands. Every target installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := $(CURDIR)/demo-output

.PHONY: install test lint typecheck unit demo bench lock clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -n 2 -q

test: lint typecheck unit

demo: install
	CHURNRISK_DATA_DIR=$(DEMO) $(BIN)/churnrisk demo --out $(DEMO)

bench: install
	$(BIN)/python bench/run.py
	$(BIN)/python bench/models.py

# Regenerate the lock file after changing dependencies in pyproject.toml.
lock:
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--generate-hashes --no-header -o requirements.lock
	@echo "requirements.lock: $$(grep -c '==' requirements.lock) pinned packages"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(DEMO)
