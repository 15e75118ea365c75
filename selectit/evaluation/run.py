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
from selectit.evaluation.preference import BaseNllCache, nll_with, preference_accuracy
from selectit.evaluation.preference_split import PreferenceSplit, preference_split, write_split
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
    # The judged pairs are read before any model loads: a bad pairs file or too few pairs is one line.
    split = preference_split(params.evaluate)
    write_split(folder, split)
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
        preference=_preference(split, model, tokenizer, model_folder is None, source, params, work_dir, progress),
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


def _preference(split: PreferenceSplit, model, tokenizer, is_base: bool, source, params: Params, work_dir, progress):
    """Preference accuracy of the model on the split's pairs, as `measure` takes it (None: off)."""
    if not split.pairs:
        return None
    tuning, cfg = params.finetune, params.evaluate
    sizes = {"batch_size": cfg.batch_size, "max_length": tuning.max_length, "progress": progress}

    def base_model_nll():
        if is_base:
            return nll_with(model, tokenizer, **sizes)
        base, base_tokenizer = load_variant(None, source.location, model.device, tuning.trust_remote_code)
        return nll_with(base, base_tokenizer, **sizes)

    cache = BaseNllCache(Path(work_dir) / "preference", source.content_id, tuning.max_length)
    tuned = None if is_base else nll_with(model, tokenizer, **sizes)
    return lambda: preference_accuracy(split.pairs, tuned, lambda examples: cache.lookup(examples, base_model_nll))
