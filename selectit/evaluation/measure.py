"""Every measure the evaluation takes of one model, one score per question; shared by
the evaluate stage and `selectit evaluate`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from selectit.config import EvaluateConfig
from selectit.core.records import Example
from selectit.evaluation.benchmarks import run_benchmarks
from selectit.evaluation.heldout import heldout_nll
from selectit.evaluation.judge import judge_win_rate
from selectit.evaluation.metrics import HELDOUT_NLL, JUDGE_WIN_RATE, PREFERENCE_ACCURACY, benchmark_metric

log = logging.getLogger(__name__)


def measure(
    model,
    tokenizer,
    cfg: EvaluateConfig,
    heldout: Sequence[Example] | None,
    *,
    max_length: int,
    work_dir: Path,
    variant: str = "model",
    answers_dir: Path | None = None,
    preference: Callable[[], tuple[list[str], list[float]]] | None = None,
    progress: bool = True,
) -> dict[str, dict[str, list]]:
    """metric -> {"ids": [...], "scores": [...]}: the held-out loss (when `heldout` is
    given and cfg.heldout_loss is on), preference accuracy (when `preference` is given: it
    returns pair ids and scores, preference.py), each benchmark cfg gives a count, and the
    judge's win rate when a judge is configured (its answers are kept in `answers_dir`)."""
    questions: dict[str, dict[str, list]] = {}
    if cfg.heldout_loss and heldout:
        ids, scores = heldout_nll(
            model, tokenizer, heldout, batch_size=cfg.batch_size, max_length=max_length, progress=progress
        )
        questions[HELDOUT_NLL] = {"ids": ids, "scores": scores}
    if preference is not None:
        ids, scores = preference()
        questions[PREFERENCE_ACCURACY] = {"ids": ids, "scores": scores}
    if cfg.active_benchmarks:
        results = run_benchmarks(
            model,
            tokenizer,
            cfg.active_benchmarks,
            Path(cfg.benchmarks_dir),
            work_dir,
            run_code=cfg.run_code,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            progress=progress,
        )
        for name, result in results.items():
            questions[benchmark_metric(name, result.metric)] = {"ids": result.question_ids, "scores": result.scores}
    if cfg.judge.enabled:
        ids, scores = judge_win_rate(
            model,
            tokenizer,
            cfg.judge,
            benchmarks_dir=Path(cfg.benchmarks_dir),
            variant=variant,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            work_dir=Path(work_dir) / "judge",
            answers_dir=Path(answers_dir or work_dir),
            progress=progress,
        )
        questions[JUDGE_WIN_RATE] = {"ids": ids, "scores": scores}
    else:
        log.info("no judge configured (evaluate.judge.base_url): AlpacaEval win rate skipped")
    return questions


def means(questions: dict[str, dict[str, list]]) -> dict[str, float]:
    return {m: sum(q["scores"]) / len(q["scores"]) for m, q in questions.items() if q["scores"]}
