"""Stage 9: the run report, one HTML file: what was selected and why, and whether it paid off."""

# No `from __future__ import annotations`: Prefect builds a pydantic model of the flow's
# parameters, and a served deployment cannot resolve RunContext from a string annotation.

import dataclasses

from prefect import flow

from flows.common import stage_main, tracked_stage
from selectit.context import RunContext
from selectit.core.stages import Stage
from selectit.provenance import code_version
from selectit.report import ReportResult
from tasks.report import build_run_report


@flow(name=Stage.REPORT.value, log_prints=True, version=code_version(__name__))
def report_flow(context: RunContext) -> ReportResult:
    params, layout = context.params, context.layout
    settings = {name: dataclasses.asdict(getattr(params, name)) for name in ("select", "aggregate", "report")}
    with tracked_stage(context, Stage.REPORT, settings, __name__) as log:
        result = build_run_report(params, layout)
        log.metrics(result.metrics(), headline=True)
        log.artifact(layout.run_report, Stage.REPORT)
        print(f"report: {result.html} (open it in a browser; `selectit explain ID` shows one example's ratings)")
    return result


if __name__ == "__main__":
    stage_main(report_flow, __doc__)
