# Two entry points do all the set-up on a fresh machine: `make demo` and `make test`.
# Everything installs into .venv/ (the product) and .venv-mlflow/ (the reference MLflow the
# differential and interoperability tests compare against; never imported by the product).
# .venv-mlserver/ holds the product with its [mlserver] extra (MLServer pulls in MLflow).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MLFLOW_VENV := .venv-mlflow
MLFLOW_VERSION := 3.17.2
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: install demo demo-serve test lint typecheck pytest nbtest bench bench-ray clean labextension jstest chromium

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

# `make demo`: the demo spam model registered (once) in the default registry, then JupyterLab on
# the quick start. Lab avoids 8888, the port the quick start serves its model on.
demo: install
	$(PY) -c "from jupyter_serve.demo import ensure_demo_model; ensure_demo_model()"
	$(VENV)/bin/jupyter lab --ServerApp.port=8890 $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/01-quickstart.ipynb

# The same model served from the shell, without Lab (port 5000; prints a curl to try).
demo-serve: install
	$(PY) -m jupyter_serve.demo

lint: install
	$(PY) -m ruff check jupyter_serve tests benchmarks
	$(PY) -m ruff format --check jupyter_serve tests benchmarks

typecheck: install
	$(PY) -m mypy

# The JupyterLab extension: the editable install builds it once (hatch-jupyter-builder); this
# rebuilds it when its sources change. jlpm is the yarn shipped with jupyterlab/jupyter-builder.
LABEXT := labextension
# static/style.js, not package.json: the builder copies package.json with its old mtime.
LABEXT_BUILT := jupyter_serve/labextension/static/style.js
# The reinstall copies the new build into .venv/share/jupyter/labextensions (shared-data).
$(LABEXT_BUILT): $(wildcard $(LABEXT)/src/*) $(wildcard $(LABEXT)/style/*) $(LABEXT)/package.json $(LABEXT)/yarn.lock | $(VENV)/.installed
	cd $(LABEXT) && PATH=$(CURDIR)/$(VENV)/bin:$$PATH jlpm install && PATH=$(CURDIR)/$(VENV)/bin:$$PATH jlpm build:prod
	$(PY) -m pip install $(PIP_QUIET) --no-deps -e .
	touch $@

labextension: $(LABEXT_BUILT)

# `models serve --enable-mlserver` for real (tests/test_mlserver.py): the product with its
# [mlserver] extra, in a venv of its own since .venv must stay without MLflow. uv, not pip: it
# builds this venv several times faster (CI budget). After the extension build, so the editable
# install finds it built.
MLSERVER_VENV := .venv-mlserver
$(MLSERVER_VENV)/.installed: pyproject.toml | $(VENV)/.installed $(LABEXT_BUILT)
	$(VENV)/bin/uv venv --quiet --allow-existing --python $(PYTHON) $(MLSERVER_VENV)
	$(VENV)/bin/uv pip install --quiet --python $(MLSERVER_VENV)/bin/python -e '.[mlserver]' 'mlflow==$(MLFLOW_VERSION)'
	touch $@

# A Ray Serve cluster for tests/test_ray_target.py: ray[serve] and nothing of ours (each
# deployment ships our package, the model and its requirements to the cluster).
RAY_VENV := .venv-ray
RAY_VERSION := 2.60.0
$(RAY_VENV)/.installed:
	$(PYTHON) -m venv $(RAY_VENV)
	$(RAY_VENV)/bin/python -m pip install $(PIP_QUIET) 'ray[serve]==$(RAY_VERSION)'
	touch $@

jstest: $(LABEXT_BUILT)
	cd $(LABEXT) && PATH=$(CURDIR)/$(VENV)/bin:$$PATH jlpm test

# The browser test drives Debian's chromium (Playwright's own browser download fails offline).
/usr/bin/chromium:
	apt-get -o DPkg::Lock::Timeout=300 update && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y chromium

chromium: /usr/bin/chromium

pytest: install $(MLFLOW_VENV)/.installed $(MLSERVER_VENV)/.installed $(RAY_VENV)/.installed labextension chromium
	JUPYTER_SERVE_MLFLOW_PYTHON=$(CURDIR)/$(MLFLOW_VENV)/bin/python \
		JUPYTER_SERVE_RAY_PYTHON=$(CURDIR)/$(RAY_VENV)/bin/python \
		JUPYTER_SERVE_MLSERVER_PYTHON=$(CURDIR)/$(MLSERVER_VENV)/bin/python $(PY) -m pytest

# The tutorials, run top to bottom and compared with their saved outputs (notebooks/sanitize.cfg
# hides what differs between runs: ports, latencies, temporary paths, ids).
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg
# The quick start scores its model with `!curl` too (Debian, once).
/usr/bin/curl:
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y curl || \
		(apt-get -o DPkg::Lock::Timeout=300 update && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y curl)

nbtest: install $(MLFLOW_VENV)/.installed /usr/bin/curl
	JUPYTER_SERVE_MLFLOW_PYTHON=$(CURDIR)/$(MLFLOW_VENV)/bin/python $(PY) -m pytest $(NBVAL) notebooks/

test: lint typecheck jstest pytest nbtest

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) $(MLSERVER_VENV) $(RAY_VENV) build dist $(LABEXT)/node_modules $(LABEXT)/lib jupyter_serve/labextension

# `make bench`: side-by-side load tests against `mlflow models serve` (benchmarks/run.py);
# writes benchmarks/results/RESULTS.md and throughput.png. wrk comes from Debian (apt, once).
$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install $(PIP_QUIET) -e '.[test,bench]'
	touch $@

/usr/bin/wrk:
	apt-get -o DPkg::Lock::Timeout=300 install -y wrk || \
		(apt-get -o DPkg::Lock::Timeout=300 update && apt-get -o DPkg::Lock::Timeout=300 install -y wrk)

# Our package is installed editable: compile it as a wheel install would, so that start-up
# figures do not include compiling our own sources (PYTHONDONTWRITEBYTECODE may be set).
bench: $(VENV)/.bench-installed $(MLFLOW_VENV)/.installed /usr/bin/wrk
	$(PY) -m compileall -q jupyter_serve
	JUPYTER_SERVE_MLFLOW_PYTHON=$(CURDIR)/$(MLFLOW_VENV)/bin/python $(PY) -m benchmarks.run

# Ours on Ray Serve against a plain Ray Serve app around mlflow.pyfunc, on a local cluster
# (benchmarks/ray_bench.py; minutes: the plain app's replicas install MLflow first).
bench-ray: $(VENV)/.bench-installed $(RAY_VENV)/.installed /usr/bin/wrk
	$(PY) -m benchmarks.ray_bench --ray-python $(CURDIR)/$(RAY_VENV)/bin/python
