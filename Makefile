# KneeScope: `make run` sets up and starts, `make test` sets up and runs the tests.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup system-packages run serve example test lint bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch is pinned in requirements.txt next to nnunetv2 so pip keeps the CPU build (a plain `pip install torch`
	# would pull the CUDA wheels); the grep only hides the local package index's "Location ... is ignored" noise.
	$(PY) -m pip install --quiet -r requirements-dev.txt 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(PY) -m pip install --quiet --no-deps -e . 2>&1 | { grep -v "^WARNING: Location" || true; }
	touch $(STAMP)

setup: $(STAMP)

# Debian packages the tests use: Chromium drives the browser tests (Playwright uses it directly; no browser
# download), systemd's systemd-analyze verifies deploy/kneescope.service. Installed when missing and root (CI).
SYSTEM_PACKAGES := chromium:chromium systemd:systemd-analyze
system-packages:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
	  command -v "$${pair#*:}" >/dev/null || missing="$$missing $${pair%%:*}"; done; \
	if [ -n "$$missing" ]; then if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "Missing Debian packages:$$missing (sudo apt-get install$$missing); their tests will be skipped"; fi; fi

run: $(STAMP)
	$(PY) app.py

serve: $(STAMP)
	$(PY) -m app.serve $(SERVE_ARGS)

example: $(STAMP)
	$(PY) -m pipeline example --out out/example

test: $(STAMP) system-packages
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check pipeline tests bench

bench: $(STAMP)
	$(PY) bench/thickness_vs_pymskt.py

clean:
	rm -rf $(VENV) out .pytest_cache test-artifacts
