"""Task of the aggregate stage: check the rating tables, then score every example."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import AggregateConfig
from selectit.core.layout import Layout
from selectit.provenance import code_version
from selectit.scoring.run import aggregate_folder
from selectit.summaries import AggregateSummary


@task(name="aggregate-scores", cache_policy=NO_CACHE, version=code_version(__name__))
def aggregate_scores(raters: list[str], cfg: AggregateConfig, num_prompts: int, layout: Layout) -> AggregateSummary:
    """See `aggregate_folder`; the summary is saved once the scores and rejects are written."""
    summary = aggregate_folder(raters, cfg, num_prompts, layout)
    summary.save(layout.aggregated)
    return summary
