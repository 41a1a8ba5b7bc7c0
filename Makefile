# Two commands set up a fresh machine (Python 3.11, git, make):
#   make demo   install into .venv, run the main job on the embedded sample market
#   make test   install into .venv, run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-notebooks test-pytest sync-check docs docs-serve lab mlflow-ui dashboard bench airflow-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the CPU wheel first: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

# Airflow in its own virtualenv (its pins clash with the workbench's): the DAG in pipelines/airflow/ runs there and calls
# the main venv's `swb`; tests/test_airflow.py runs it with dag.test() on a sqlite metadata database
AIRFLOW_VENV := .venv-airflow
AIRFLOW_VERSION := 3.3.2
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed-$(AIRFLOW_VERSION)

$(AIRFLOW_STAMP): pipelines/airflow/constraints.txt
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install -q --upgrade pip
	# its own pins, frozen from a verified install (Airflow's published constraints files are not reachable from here)
	$(AIRFLOW_VENV)/bin/python -m pip install -q -c pipelines/airflow/constraints.txt "apache-airflow==$(AIRFLOW_VERSION)"
	touch $(AIRFLOW_STAMP)

airflow-venv: $(AIRFLOW_STAMP)

# The main job: the EOD pipeline on the embedded sample market; it prints where the report is.
demo: $(STAMP)
	$(BIN)/swb run eod

test: test-notebooks test-pytest

test-notebooks: $(STAMP)
	$(BIN)/nbdev-test --n-workers 2 --flags slow

test-pytest: $(STAMP) $(AIRFLOW_STAMP)
	$(BIN)/pytest -q -n 2 --dist loadgroup --durations=25 tests

# The package must be exactly what the notebooks export.
sync-check: $(STAMP)
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean
	@test -z "$$(git status --porcelain -- nbs stock_workbench)" || { git status --porcelain -- nbs stock_workbench; echo "notebooks and package are out of sync: run nbdev-export && nbdev-clean and commit" >&2; exit 1; }

# The docs site in _docs/ (home page nbs/index.ipynb), built without running the notebooks' tests; fails on a link
# to a missing page or section. nbdev-docs renders with Quarto when a `quarto` is on PATH (the venv's bin comes first);
# quarto-cli on PyPI downloads Quarto at install time, which fails here, so tools/build_docs.py renders the pages.
docs: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python tools/build_docs.py

# Build, then serve the site on http://127.0.0.1:8000 (DOCS_PORT=... for another port)
docs-serve: docs
	$(BIN)/python tools/build_docs.py --serve $${DOCS_PORT:-8000}

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=.

mlflow-ui: $(STAMP)
	MLFLOW_DISABLE_TELEMETRY=true $(BIN)/mlflow ui --host 127.0.0.1 --backend-store-uri "sqlite:///$${SWB_HOME:-$$PWD}/mlflow.db"

dashboard: $(STAMP)
	$(BIN)/swb dashboard

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_walkforward.py
	$(BIN)/python benchmarks/bench_backtest.py
	$(BIN)/python benchmarks/bench_eod.py
	$(BIN)/python benchmarks/bench_dashboard.py
	$(BIN)/python benchmarks/bench_stream.py
	$(BIN)/python benchmarks/bench_concurrent_ingest.py
	$(BIN)/python benchmarks/bench_maintain.py
	$(BIN)/python benchmarks/bench_serve.py
	$(BIN)/python benchmarks/bench_privacy.py
	$(BIN)/python benchmarks/bench_news.py
	$(BIN)/python benchmarks/bench_news_signal.py
	$(BIN)/python benchmarks/bench_scale.py
