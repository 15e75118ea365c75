"""Task of the evaluate stage: one variant's per-question scores on every measure."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import Params
from selectit.core.layout import Layout
from selectit.core.records import read_example_records
from selectit.evaluation.run import evaluate_model
from selectit.provenance import code_version
from selectit.summaries import EvaluateSummary


@task(
    name="evaluate-variant", task_run_name="evaluate-{variant}", cache_policy=NO_CACHE, version=code_version(__name__)
)
def evaluate_variant(params: Params, layout: Layout, variant: str, progress: bool = True) -> EvaluateSummary:
    heldout = read_example_records(layout.heldout) if params.evaluate.heldout_loss else None
    return evaluate_model(
        variant,
        layout.finetuned(variant),
        params,
        heldout,
        layout.evaluation(variant),
        layout.root / "cache" / "benchmarks",
        progress=progress,
    )
