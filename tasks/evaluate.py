"""Task of the evaluate stage: one variant's per-question scores on every measure."""

from __future__ import annotations

import dataclasses
import logging
import time

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import Params
from selectit.core.layout import Layout
from selectit.core.records import read_example_records
from selectit.evaluation.measure import means, measure
from selectit.evaluation.metrics import write_questions
from selectit.finetune.models import load_variant
from selectit.finetune.train import training_dtype
from selectit.provenance import code_version
from selectit.rating.models import resolve
from selectit.summaries import EvaluateSummary, FinetuneSummary

log = logging.getLogger(__name__)


@task(
    name="evaluate-variant", task_run_name="evaluate-{variant}", cache_policy=NO_CACHE, version=code_version(__name__)
)
def evaluate_variant(params: Params, layout: Layout, variant: str, progress: bool = True) -> EvaluateSummary:
    cfg = params.evaluate
    trained = FinetuneSummary.load(layout.finetuned(variant))
    source = resolve(params.finetune.base_model, params.finetune.trust_remote_code)
    _, device = training_dtype(params.finetune)
    model_folder = None if variant == "base" else layout.finetuned_model(variant)
    model, tokenizer = load_variant(model_folder, source.location, device, params.finetune.trust_remote_code)
    started = time.perf_counter()
    heldout = read_example_records(layout.heldout) if cfg.heldout_loss else None
    folder = layout.evaluation(variant)
    questions = measure(
        model,
        tokenizer,
        cfg,
        heldout,
        max_length=params.finetune.max_length,
        work_dir=layout.root / "cache" / "benchmarks",
        variant=variant,
        answers_dir=folder,
        progress=progress,
    )
    write_questions(folder, questions)
    summary = EvaluateSummary(
        variant=variant,
        means=means(questions),
        questions={m: len(q["ids"]) for m, q in questions.items()},
        seconds=round(time.perf_counter() - started, 1),
        finetune_run_key=trained.run_key,
        settings={"evaluate": dataclasses.asdict(cfg)},
    )
    summary.save(folder)
    return summary
