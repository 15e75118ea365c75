"""One model's evaluation with its summary: what the evaluate stage and `selectit evaluate` both call."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

from selectit.config import Params
from selectit.core.records import Example
from selectit.evaluation.measure import means, measure
from selectit.evaluation.metrics import write_questions
from selectit.finetune.models import load_variant
from selectit.finetune.train import BASE_MODEL, training_dtype
from selectit.hygiene.benchmark_texts import check_evaluated_files
from selectit.rating.models import resolve
from selectit.summaries import EvaluateSummary, FinetuneSummary


def evaluate_model(
    variant: str,
    trained: Path | None,
    params: Params,
    heldout: Sequence[Example] | None,
    folder: Path,
    work_dir: Path,
    *,
    progress: bool = True,
) -> EvaluateSummary:
    """Measure a fine-tuning result and write questions.json and summary.json to `folder`.

    `trained` is a finetune output folder (its summary.json, and model/ unless it is the
    untuned base); None is the base model of params.finetune as it is."""
    tuning = params.finetune
    # A broken benchmark file stops here, naming its line, before a model is loaded.
    check_evaluated_files(list(params.evaluate.active_benchmarks), Path(params.evaluate.benchmarks_dir))
    source = resolve(tuning.base_model, tuning.trust_remote_code, role=BASE_MODEL)
    summary = FinetuneSummary.load(trained, "finetune") if trained is not None else None
    model_folder = trained / "model" if summary is not None and summary.method != "none" else None
    _, device = training_dtype(tuning)
    model, tokenizer = load_variant(model_folder, source.location, device, tuning.trust_remote_code)
    started = time.perf_counter()
    questions = measure(
        model,
        tokenizer,
        params.evaluate,
        heldout,
        max_length=tuning.max_length,
        work_dir=work_dir,
        variant=variant,
        answers_dir=folder,
        progress=progress,
    )
    write_questions(folder, questions)
    result = EvaluateSummary(
        variant=variant,
        means=means(questions),
        questions={m: len(q["ids"]) for m, q in questions.items()},
        seconds=round(time.perf_counter() - started, 1),
        finetune_run_key=summary.run_key if summary is not None else source.content_id,
        settings={"evaluate": dataclasses.asdict(params.evaluate)},
    )
    result.save(folder)
    return result
