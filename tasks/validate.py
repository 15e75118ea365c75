"""Task of the validate stage: the Great Expectations suite and the hygiene pass over the ingested records."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.checks.run import validate_folder
from selectit.config import Params
from selectit.core.layout import Layout
from selectit.provenance import code_version
from selectit.summaries import ValidateSummary


@task(name="validate-records", cache_policy=NO_CACHE, version=code_version(__name__))
def validate_records(params: Params, layout: Layout, progress: bool) -> ValidateSummary:
    """See `validate_folder`; the summary is saved once its files are written."""
    benchmarks_dir = Path(params.evaluate.benchmarks_dir)
    summary = validate_folder(params.validate, params.hygiene, benchmarks_dir, layout, progress)
    summary.save(layout.validated)
    return summary
