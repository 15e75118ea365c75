"""Fixtures for every tier, and the tier markers: a test's folder (unit/, integration/,
e2e/) is its tier, so `pytest -m unit` (or integration, e2e) picks one tier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import TESTS, TINY_ROWS, tiny_llama

from selectit.core.telemetry import switch_off_telemetry

TIERS = ("unit", "integration", "e2e")
# The fixtures below that load a model; the e2e tier's servers and project copies are
# defined in e2e/conftest.py, so no other tier can ask for them.
MODEL_FIXTURES = {"smollm2_folder", "tiny_model"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = item.path.relative_to(TESTS).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test belongs in one of tests/{{{','.join(TIERS)}}}/")
        if tier == "unit" and MODEL_FIXTURES & set(item.fixturenames):
            raise pytest.UsageError(f"{item.nodeid}: a unit test loads no model; it belongs in tests/integration/")
        item.add_marker(tier)
    # The slowest tier first: with several workers (make test), the long end-to-end files start
    # at once and the short unit tests fill the gaps, instead of one long file running alone at the end.
    items.sort(key=lambda item: TIERS[::-1].index(item.path.relative_to(TESTS).parts[0]))


def pytest_configure(config: pytest.Config) -> None:
    # No internet here: nothing the tests start (Prefect's test server, MLflow) reports usage.
    switch_off_telemetry()
    # DVC binds its log handlers to the sys.stdout of the moment it is first imported. Imported
    # here, that is the session's capture; imported first inside a test that uses capsys or capfd,
    # it would be that test's stream, closed when the test ends, and DVC's next log line (an
    # in-process `dvc init` in a later test) would fail on it.
    import dvc  # noqa: F401


@pytest.fixture(scope="session")
def smollm2_folder() -> Path:
    """SmolLM2's converted folder (the GGUF converts once into ~/.cache/selectit)."""
    from selectit.rating.models import ModelLoadError, resolve

    try:
        return Path(resolve("smollm2-135m-instruct").location)
    except ModelLoadError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, smollm2_folder) -> Path:
    """A 2-layer random Llama with SmolLM2's real tokenizer, saved as a local model folder."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder)
    model = tiny_llama(tokenizer)
    folder = tmp_path_factory.mktemp("models") / "tiny-llama"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_alpaca(tmp_path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_ROWS, indent=2))
    return path
