# Two commands a new user needs: `make demo` and `make test`.
# Each creates .venv (Python 3.11) and installs the package when missing.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tfvision-installed
# Two pytest workers: the CI machine has two cores. `worksteal` rebalances the long tests
# (distributed steps, multi-worker, SIGKILL resume) that otherwise leave one core idle.
PYTEST_WORKERS ?= 2

.PHONY: demo test test-fast bench clean venv

venv: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m tfvision.demo

test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal --durations=25 tests

# Everything but the full-size parameter counts and other `slow` tests.
test-fast: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow" tests

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/run.py resnet50_keras swidernet_0.25_0.25_0.75 --size 224 --batch 8

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
