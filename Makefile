# Two entry points do all the set-up on a fresh machine: `make demo` and `make test`.
# Everything installs into .venv/ (the product) and .venv-mlflow/ (the reference MLflow the
# differential and interoperability tests compare against; never imported by the product).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MLFLOW_VENV := .venv-mlflow
MLFLOW_VERSION := 3.17.2
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: install demo test lint typecheck pytest bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) --upgrade pip
	$(PY) -m pip install $(PIP_QUIET) -e '.[test]'
	touch $@

$(MLFLOW_VENV)/.installed:
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install $(PIP_QUIET) 'mlflow==$(MLFLOW_VERSION)'
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m jupyter_serve.demo

lint: install
	$(PY) -m ruff check jupyter_serve tests benchmarks
	$(PY) -m ruff format --check jupyter_serve tests benchmarks

typecheck: install
	$(PY) -m mypy

pytest: install $(MLFLOW_VENV)/.installed
	JUPYTER_SERVE_MLFLOW_PYTHON=$(CURDIR)/$(MLFLOW_VENV)/bin/python $(PY) -m pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) build dist

# `make bench`: side-by-side load tests against `mlflow models serve` (benchmarks/run.py);
# writes benchmarks/results/RESULTS.md and throughput.png. wrk comes from Debian (apt, once).
$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install $(PIP_QUIET) -e '.[test,bench]'
	touch $@

/usr/bin/wrk:
	apt-get -o DPkg::Lock::Timeout=300 install -y wrk || \
		(apt-get -o DPkg::Lock::Timeout=300 update && apt-get -o DPkg::Lock::Timeout=300 install -y wrk)

bench: $(VENV)/.bench-installed $(MLFLOW_VENV)/.installed /usr/bin/wrk
	JUPYTER_SERVE_MLFLOW_PYTHON=$(CURDIR)/$(MLFLOW_VENV)/bin/python $(PY) -m benchmarks.run
