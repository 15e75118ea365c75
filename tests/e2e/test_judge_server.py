"""The AlpacaEval-style win rate against a real OpenAI-compatible server on loopback:
`transformers serve` with SmolLM2 as the judge, alpaca-eval's annotator in between."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import SHARED_DATA, free_port, judge_config

from selectit.config import JudgeConfig
from selectit.core.errors import InputError
from selectit.evaluation.judge import ANSWERS_FILE, judge_win_rate, load_questions

BENCHMARKS = SHARED_DATA / "benchmarks"


@pytest.fixture(scope="module")
def variant(tiny_model):
    import torch

    from selectit.finetune.models import load_variant

    return load_variant(None, str(tiny_model), torch.device("cpu"))


def _win_rate(cfg: JudgeConfig, variant, tmp_path: Path):
    model, tokenizer = variant
    return judge_win_rate(
        model,
        tokenizer,
        cfg,
        benchmarks_dir=BENCHMARKS,
        variant="tiny",
        max_new_tokens=12,
        batch_size=4,
        seed=0,
        work_dir=tmp_path / "judge",
        answers_dir=tmp_path / "eval",
        progress=False,
    )


@pytest.mark.slow
def test_win_rate_from_a_judge_served_on_loopback_and_its_cache(judge_server, variant, tmp_path):
    base_url, model = judge_server
    ids, scores = _win_rate(judge_config(base_url, model), variant, tmp_path)

    questions = load_questions(BENCHMARKS, 3, seed=0)
    assert ids == [q.id for q in questions]
    assert len(scores) == 3 and set(scores) <= {0.0, 0.5, 1.0}
    answers = json.loads((tmp_path / "eval" / ANSWERS_FILE).read_text())
    assert [a["instruction"] for a in answers] == [q.instruction for q in questions]
    assert {a["generator"] for a in answers} == {"tiny"}
    annotations = json.loads((tmp_path / "judge" / "annotations.json").read_text())
    assert len(annotations) == 3
    # 1 or 2: the judge picked one; 1.5: identical answers; -1: its reply named neither.
    assert all(a["preference"] in (1, 2, 1.5, -1) for a in annotations)
    assert any(a["preference_raw_completion"] for a in annotations)  # the judge really answered

    # The same answers again: every verdict comes from the cache, with no judge listening.
    closed = f"http://127.0.0.1:{free_port()}/v1"
    assert _win_rate(judge_config(closed, model), variant, tmp_path) == (ids, scores)


def test_an_unreachable_judge_is_one_clear_error(variant, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(InputError, match=f"the judge at {closed} failed"):
        _win_rate(judge_config(closed, "judge", questions=1), variant, tmp_path)
