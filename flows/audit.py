"""Stage: the audit. Do the scores pick the better response? Judged pairs are rated like
any example, and every level of the score is checked against the judge's preference."""

# No `from __future__ import annotations`: Prefect builds a pydantic model of the flow's
# parameters, and a served deployment cannot resolve RunContext from a string annotation.

import dataclasses

from prefect import flow

from flows.common import stage_main, tracked_stage
from selectit.audit.run import REPORT_MARKDOWN
from selectit.context import RunContext
from selectit.core.stages import Stage
from selectit.provenance import code_version
from selectit.summaries import AuditSummary
from selectit.tracking import lineage
from tasks.audit import audit_judged_pairs


@flow(name=Stage.AUDIT.value, log_prints=True, version=code_version(__name__))
def audit_flow(context: RunContext) -> AuditSummary:
    params, layout = context.params, context.layout
    with tracked_stage(context, Stage.AUDIT, {"audit": dataclasses.asdict(params.audit)}, __name__) as log:
        AuditSummary.discard(layout.audit)
        summary = audit_judged_pairs(params, layout, context.progress)
        # `audit.agreement`, ... under the same names on this run and the pipeline's parent
        # run, so MLflow's compare view ranks rater and prompt settings by agreement.
        log.metrics(summary.metrics)
        log.parent_metrics(summary.metrics)
        if summary.enabled:
            log.tags({"audit.pairs_sha256": summary.pairs_sha256, **lineage.output_sha(layout.audit_report)})
            log.artifact(layout.audit, Stage.AUDIT)
        print((layout.audit / REPORT_MARKDOWN).read_text(encoding="utf-8"))
    return summary


if __name__ == "__main__":
    stage_main(audit_flow, __doc__)
