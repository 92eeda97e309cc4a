# churnrisk — the README's commands. Every target installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := $(CURDIR)/demo-output
PORT   ?= 8000

.PHONY: install sysdeps test lint typecheck unit demo bench lock clean

install: $(VENV)/.installed

# Debian packages: Chromium for the browser tests, wrk for the service benchmark.
# Installed once per machine (root, as CI runs); nothing is downloaded at run time.
SYSDEPS := /usr/bin/chromium /usr/bin/wrk
sysdeps: $(SYSDEPS)

$(SYSDEPS):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium wrk

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

unit: install sysdeps
	$(BIN)/pytest -n 2 -q

test: lint typecheck unit

# The demo serves the dashboard for your own browser: it needs neither chromium nor wrk.
demo: install
	CHURNRISK_DATA_DIR=$(DEMO) $(BIN)/churnrisk demo --out $(DEMO) --port $(PORT)

bench: install sysdeps
	$(BIN)/python bench/run.py
	$(BIN)/python bench/models.py
	$(BIN)/python bench/calibration.py
	$(BIN)/python bench/worlds.py
	$(BIN)/python bench/service.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/spark.py

# Regenerate the lock file after changing dependencies in pyproject.toml.
lock:
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev --extra spark --python-version 3.11 \
		--generate-hashes --no-header -o requirements.lock
	@echo "requirements.lock: $$(grep -c '==' requirements.lock) pinned packages"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(DEMO)
