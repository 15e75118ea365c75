"""Task of the compare stage: every variant by metric, with intervals and paired
differences against the reference variant, as Markdown, JSON and DVC metrics."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import Params
from selectit.core.layout import Layout
from selectit.evaluation.compare import Comparison
from selectit.evaluation.comparison import compare_evaluations
from selectit.provenance import code_version


@task(name="compare-variants", cache_policy=NO_CACHE, version=code_version(__name__))
def compare(params: Params, layout: Layout) -> Comparison:
    evaluated = {variant: layout.evaluation(variant) for variant in params.finetune.variants}
    return compare_evaluations(evaluated, params.evaluate, layout.comparison)
