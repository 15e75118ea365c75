"""Task of the compare stage: every variant by metric, with intervals and paired
differences against the reference variant, as Markdown, JSON and DVC metrics."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import Params
from selectit.core.io import write_json, write_text
from selectit.core.layout import Layout
from selectit.evaluation.compare import Comparison, compare_variants
from selectit.evaluation.metrics import ordered_specs, read_questions
from selectit.provenance import code_version

MARKDOWN_FILE = "comparison.md"
JSON_FILE = "comparison.json"


@task(name="compare-variants", cache_policy=NO_CACHE, version=code_version(__name__))
def compare(params: Params, layout: Layout) -> Comparison:
    results = {variant: read_questions(layout.evaluation(variant)) for variant in params.finetune.variants}
    metrics = ordered_specs(name for questions in results.values() for name in questions)
    cfg = params.evaluate
    comparison = compare_variants(
        results,
        metrics,
        reference=cfg.reference,
        resamples=cfg.bootstrap_resamples,
        level=cfg.confidence,
        seed=cfg.seed,
    )
    write_text(layout.comparison / MARKDOWN_FILE, comparison.to_markdown())
    write_json(layout.comparison / JSON_FILE, comparison.to_json())
    write_json(layout.comparison_metrics, comparison.dvc_metrics())
    return comparison
