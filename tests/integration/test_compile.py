"""score.compile: the rater's forward pass through torch.compile, once per loaded rater."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from helpers import tiny_examples, write_params

from selectit.config import load_params
from selectit.core.records import write_example_records
from selectit.rating.engine import TransformersRater
from selectit.rating.keys import rater_cache
from selectit.rating.models import ModelSource
from selectit.rating.rate import RaterSession, rate_records
from selectit.rating_params import rating_settings

pytestmark = pytest.mark.usefixtures("isolated_caches")


@pytest.fixture
def compile_calls(monkeypatch) -> list[dict]:
    """The settings of every torch.compile call, which still compiles for real: Dynamo
    captures the graphs (cached-prefix path included) as in a run, but they run through
    the `aot_eager` backend, since inductor's C++ code generation takes minutes on a
    2-core CPU (benchmarks/bench_scoring.py --compile runs inductor on the real raters)."""
    calls: list[dict] = []
    real = torch.compile

    def counting(fn, **kwargs):
        calls.append(kwargs)
        return real(fn, **kwargs, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", counting)
    return calls


def _rate_in_two_shards(tmp_path, tiny_model, compile: bool) -> tuple[np.ndarray, RaterSession]:
    spec = str(tiny_model)
    params = write_params(
        tmp_path / f"params-{compile}.yaml", "tiny.json", [spec], shard_size=3, num_prompts=1, compile=compile
    )
    settings = rating_settings(load_params(params).score)
    session = RaterSession(spec, settings, rater_cache(tmp_path / f"ratings-{compile}", spec, settings))
    records = tmp_path / f"examples-{compile}.jsonl"
    write_example_records(tiny_examples(), records)
    rated = rate_records(session, records, tmp_path / f"ratings-{compile}.parquet", progress=False)
    assert len(rated.plan.shards) == 2  # the 6 examples in two shards
    table = pq.read_table(rated.ratings).sort_by([("example_id", "ascending"), ("prompt_id", "ascending")])
    return np.array(table["probs"].to_pylist()), session


def test_a_session_compiles_its_rater_once_for_all_shards(monkeypatch, tmp_path, tiny_model):
    calls: list[dict] = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: calls.append(kwargs) or fn)  # no compiling
    _, session = _rate_in_two_shards(tmp_path, tiny_model, compile=True)
    assert calls == [{"dynamic": True}]
    assert session.loaded.rater.compiled


@pytest.mark.slow  # Dynamo's tracing alone takes about a minute on a 2-core CPU
def test_compiled_rater_matches_eager_and_compiles_once(tmp_path, tiny_model, compile_calls):
    eager, _ = _rate_in_two_shards(tmp_path, tiny_model, compile=False)
    assert compile_calls == []
    compiled, session = _rate_in_two_shards(tmp_path, tiny_model, compile=True)
    # Once, at load, for both shards; and the compiled model really ran (no fallback).
    assert compile_calls == [{"dynamic": True}]
    assert session.loaded.rater.compiled
    np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-6)


def test_a_model_that_fails_to_compile_runs_uncompiled(monkeypatch, tiny_model, caplog):
    def broken(fn, **kwargs):
        def fails(*args, **kw):
            raise RuntimeError("cannot compile this")

        return fails

    monkeypatch.setattr(torch, "compile", broken)
    source = ModelSource("tiny", str(tiny_model))
    reference = TransformersRater(source, "float32", "cpu")
    rater = TransformersRater(source, "float32", "cpu", compile=True)
    # Two texts with a shared 20-token prefix: the cached-prefix path fails first.
    texts = [list(range(10, 30)) + [5, 6], list(range(10, 30)) + [7, 8, 9]]
    with caplog.at_level(logging.WARNING, logger="selectit.rating.engine"):
        got = rater.rate(texts, [11, 12, 13], 4096, progress=False).probs
    assert not rater.compiled
    assert "the compiled model failed (RuntimeError: cannot compile this)" in caplog.text
    np.testing.assert_allclose(got, reference.rate(texts, [11, 12, 13], 4096, progress=False).probs, rtol=1e-6)
