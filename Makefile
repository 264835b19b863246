# KneeScope: `make run` sets up and starts, `make test` sets up and runs the tests.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup system-tools browser run serve example test check lint bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch is pinned in requirements.txt next to nnunetv2 so pip keeps the CPU build (a plain `pip install torch`
	# would pull the CUDA wheels); the grep only hides the local package index's "Location ... is ignored" noise.
	$(PY) -m pip install --quiet -r requirements-dev.txt 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(PY) -m pip install --quiet --no-deps -e . 2>&1 | { grep -v "^WARNING: Location" || true; }
	touch $(STAMP)

setup: $(STAMP)

# Debian tools the tests drive, as command:package, installed when missing and root (CI). Chromium runs the browser
# tests (Playwright uses it directly; no browser download); dciodvfy (dicom3tools) validates the DICOM-SEG; pdftoppm
# (poppler-utils) renders the PDF report; systemd-analyze (systemd) verifies deploy/kneescope.service.
SYSTEM_TOOLS := chromium:chromium dciodvfy:dicom3tools pdftoppm:poppler-utils systemd-analyze:systemd

system-tools:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $${tool%%:*} >/dev/null || missing="$$missing $${tool##*:}"; done; \
	if [ -n "$$missing" ]; then if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "Missing Debian packages:$$missing (sudo apt-get install$$missing); the tests that need them will be skipped"; fi; fi

browser: system-tools

run: $(STAMP)
	$(PY) app.py

serve: $(STAMP)
	$(PY) -m app.serve $(SERVE_ARGS)

example: $(STAMP)
	$(PY) -m pipeline example --out out/example

# The same gate as CI: lint, format, types, then the tests, one pytest-xdist worker per core (a module's tests stay
# on one worker, so its module-scoped fixtures are built once; tests/conftest.py divides the numeric threads and
# hands the longest modules out first, an order --no-loadscope-reorder keeps). Bytecode is written even where the
# environment says not to (PYTHONDONTWRITEBYTECODE): the suite starts about a hundred Python processes (workers, CLI
# runs, Ray workers), which then compile the project and rewrite the tests' asserts once instead of each.
TEST_WORKERS ?= auto
test: $(STAMP) system-tools check
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

check: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

lint: check

bench: $(STAMP)
	$(PY) bench/thickness_vs_pymskt.py

clean:
	rm -rf $(VENV) out .pytest_cache test-artifacts
