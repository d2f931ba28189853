# Two entry points on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

# robprune sets the Ray environment it needs itself (loopback, no usage stats, token auth);
# the tests set theirs in tests/conftest.py.

.PHONY: setup demo test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	# test-only reference attacks; --no-deps because torchattacks 3.5.1 pins requests~=2.25.1
	# (old, missing security fixes; it fights ray[default])
	$(VENV)/bin/pip install -q --no-deps torchattacks==3.5.1
	touch $(STAMP)

demo: setup
	$(VENV)/bin/robprune demo

test: setup
	OMP_NUM_THREADS=1 $(VENV)/bin/python -m pytest -q --durations=15

# every package's unit tests, without the Ray end-to-end tests (tests/system/) and slow ones
test-fast: setup
	OMP_NUM_THREADS=1 $(VENV)/bin/python -m pytest -q -m "not system and not slow" --durations=10

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(VENV)/bin/python benchmarks/bench_perf.py --device cpu

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
