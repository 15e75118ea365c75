"""The measures the evaluation reports, by name, and which way is better."""

from __future__ import annotations

import json
from pathlib import Path

from selectit.core.errors import InputError
from selectit.core.io import write_json
from selectit.evaluation.compare import MetricSpec

HELDOUT_NLL = "heldout_nll"
PREFERENCE_ACCURACY = "preference_accuracy"  # share of judged pairs the tuning moved towards the preferred response
JUDGE_WIN_RATE = "alpaca_eval_win_rate"  # share of questions the judge prefers the variant over text-davinci-003
QUESTIONS_FILE = "questions.json"  # in each variant's evaluation folder


def benchmark_metric(benchmark: str, metric: str) -> str:
    """A benchmark's metric as one plain name: ("mmlu", "acc") -> "mmlu_acc"."""
    return f"{benchmark}_{metric}".replace("@", "_at_").replace("/", "_")


def metric_spec(name: str) -> MetricSpec:
    """Held-out NLL first (lower is better), preference accuracy next; benchmark scores and the
    win rate are shares (higher is better)."""
    if name == HELDOUT_NLL:
        return MetricSpec(HELDOUT_NLL, higher_is_better=False, label="held-out NLL ↓")
    if name == PREFERENCE_ACCURACY:
        return MetricSpec(PREFERENCE_ACCURACY, higher_is_better=True, label="preference accuracy ↑")
    return MetricSpec(name, higher_is_better=True, label=f"{name} ↑")


def ordered_specs(names) -> list[MetricSpec]:
    first = (HELDOUT_NLL, PREFERENCE_ACCURACY)
    return [metric_spec(n) for n in sorted(set(names), key=lambda n: (first.index(n) if n in first else 2, n))]


def write_questions(folder: Path, questions: dict[str, dict[str, list]]) -> None:
    """`questions[metric] = {"ids": [...], "scores": [...]}`, one score per question."""
    write_json(Path(folder) / QUESTIONS_FILE, questions)


def read_questions(folder: Path) -> dict[str, tuple[list[str], list[float]]]:
    """metric -> (question ids, scores), as the comparison takes them."""
    path = Path(folder) / QUESTIONS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: missing; run this variant's evaluate stage first") from None
    return {metric: (q["ids"], q["scores"]) for metric, q in raw.items()}
