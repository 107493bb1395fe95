# Two commands for users: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.aioreid-installed
# torch is pinned here (this machine has these wheels on disk); pyproject keeps ranges loose.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test lint bench setup browser clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet $(TORCH_PINS)
	$(PIP) install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The console's browser test drives Debian's chromium; installed once when missing.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (echo "installing Debian chromium + chromium-driver for the browser test"; \
	   apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

demo: $(STAMP)
	$(VENV)/bin/aioreid demo

# pytest exits 5 when it collects nothing: that is not a failure here; every other code is.
# The platform tests need the local PostgreSQL, and the worker tests Redis and RabbitMQ: here a
# missing server or broker fails, never skips.
test: $(STAMP) browser
	@AIOREID_TEST_REQUIRE_POSTGRES=1 AIOREID_TEST_REQUIRE_BROKERS=1 AIOREID_TEST_REQUIRE_BROWSER=1 \
	  $(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5): treated as success"; exit 0; fi; \
	exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .ruff_cache .hypothesis
