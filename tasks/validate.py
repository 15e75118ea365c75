"""Task of the validate stage: the Great Expectations suite over the ingested records."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.checks.run import validate_folder
from selectit.config import ValidateConfig
from selectit.core.layout import Layout
from selectit.provenance import code_version
from selectit.summaries import ValidateSummary


@task(name="validate-records", cache_policy=NO_CACHE, version=code_version(__name__))
def validate_records(cfg: ValidateConfig, layout: Layout) -> ValidateSummary:
    """See `validate_folder`; the summary is saved once its files are written."""
    summary = validate_folder(cfg, layout)
    summary.save(layout.validated)
    return summary
