"""Task of the report stage: one self-contained HTML page about the run, and the plot data beside it."""

from __future__ import annotations

import logging

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import Params
from selectit.core.layout import Layout
from selectit.provenance import code_version
from selectit.report import ReportResult, build_report

log = logging.getLogger(__name__)


@task(name="build-report", cache_policy=NO_CACHE, version=code_version(__name__))
def build_run_report(params: Params, layout: Layout) -> ReportResult:
    result = build_report(params, layout, layout.run_report)
    log.info("report: %s (%d sections, %d plots)", result.html, len(result.sections), len(result.plots))
    return result
