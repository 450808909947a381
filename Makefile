# Two commands a newcomer needs: `make demo` and `make test`. Each creates or
# reuses .venv and installs the pinned dependencies (requirements.lock) first.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
UV     := uv==0.13.9

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export MLFLOW_ENABLE_ASYNC_LOGGING := false

.PHONY: install demo browser test test-fast lint bench clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# uv installs the same pinned set in seconds where pip takes minutes; pip is the
	@# fallback when uv cannot be had. Compiled at install as pip does: with
	@# PYTHONDONTWRITEBYTECODE set (as on these machines) nothing is cached later, and
	@# every process of the suite would compile the libraries again.
	@if $(PY) -m pip install --quiet --disable-pip-version-check $(UV) 2>/dev/null; then \
	  $(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) \
	    -r requirements.lock && \
	  $(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e . ; \
	else \
	  echo "uv could not be installed: installing with pip (a few minutes)"; \
	  $(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock && \
	  $(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e . ; \
	fi
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bbx demo

# The browser test (tests/test_stack.py) drives Debian's chromium through Playwright
# (never `playwright install`: no browser downloads). Installed here when missing; needs
# root or sudo and the Debian mirrors.
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

# Two workers (this machine has two cores); a test file stays on one worker, so the
# prepared worlds a file shares are made once. One OpenMP thread per process (k-means,
# BLAS): two workers with two threads each crowd two cores. --durations shows where the
# time goes.
test: $(STAMP) browser
	BBX_REQUIRE_BROWSER=1 OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile --durations=15

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf .bbx .pytest_cache
