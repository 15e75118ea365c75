"""The AlpacaEval-style judge without a server: its settings, preferences as scores, the questions."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SHARED_DATA, judge_config

from selectit.config import JudgeConfig
from selectit.core.errors import InputError
from selectit.evaluation.judge import _preference, _score, load_questions

BENCHMARKS = SHARED_DATA / "benchmarks"


def test_judge_settings_are_checked_when_read(monkeypatch):
    from selectit.core.errors import ParamsError
    from selectit.evaluation.judge import _api_key

    with pytest.raises(ParamsError, match="evaluate.judge.model: a judge endpoint needs"):
        judge_config("http://127.0.0.1:1/v1", None).validate("evaluate.judge")
    with pytest.raises(ParamsError, match="evaluate.judge.base_url: expected an http"):
        judge_config("127.0.0.1:1", "m").validate("evaluate.judge")
    judge_config(None, None).validate("evaluate.judge")  # no judge: nothing to check
    monkeypatch.delenv("SELECTIT_TEST_JUDGE_KEY", raising=False)
    keyed = JudgeConfig("https://api.example/v1", "gpt-4", "SELECTIT_TEST_JUDGE_KEY", 5, "chatgpt")
    with pytest.raises(InputError, match="SELECTIT_TEST_JUDGE_KEY is not set"):
        _api_key(keyed)


def test_preferences_become_scores_for_the_variant():
    # alpaca-eval: 1 = output_1 (the reference) preferred, 2 = output_2 (the variant), 1.5 = identical.
    assert [_score(_preference(p)) for p in (2, 1, 1.5, None, "x", 7)] == [1.0, 0.0, 0.5, 0.5, 0.5, 0.5]


def test_questions_are_a_seeded_sample_of_the_alpaca_eval_set():
    first = load_questions(BENCHMARKS, 5, seed=1)
    assert first == load_questions(BENCHMARKS, 5, seed=1) != load_questions(BENCHMARKS, 5, seed=2)
    assert len(load_questions(BENCHMARKS, None, seed=1)) == 805
    with pytest.raises(InputError, match="the AlpacaEval set is missing"):
        load_questions(Path("/nonexistent"), 5, seed=1)
