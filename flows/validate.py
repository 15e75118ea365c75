"""Stage 2: a Great Expectations suite over the records; rejects kept, Data Docs written."""

# No `from __future__ import annotations`: Prefect builds a pydantic model of the flow's
# parameters, and a served deployment cannot resolve RunContext from a string annotation.

import dataclasses

from prefect import flow

from flows.common import stage_main, tracked_stage
from selectit.context import RunContext
from selectit.core.stages import Stage
from selectit.provenance import code_version
from selectit.stages import check_ingested
from selectit.summaries import ValidateSummary, ledger_line
from selectit.tracking import lineage
from tasks.validate import validate_records


@flow(name=Stage.VALIDATE.value, log_prints=True, version=code_version(__name__))
def validate_flow(context: RunContext) -> ValidateSummary:
    layout, params = context.layout, context.params
    settings = {"validate": dataclasses.asdict(params.validate), "hygiene": dataclasses.asdict(params.hygiene)}
    with tracked_stage(context, Stage.VALIDATE, settings, __name__) as log:
        ValidateSummary.discard(layout.validated)
        check_ingested(layout, params)
        summary = validate_records(params, layout, context.progress)
        log.metrics(summary.headline(), headline=True)
        log.tags(
            {
                **lineage.input_tags(log, Stage.INGEST, layout.examples(layout.ingested)),
                **lineage.output_sha(layout.examples(layout.validated)),
            }
        )
        log.artifact(layout.rejects(layout.validated), Stage.VALIDATE)
        if summary.data_docs:
            log.artifact(layout.validation_docs, "validate/data_docs")
        flagged = ", ".join(f"{n} {flag}" for flag, n in summary.flagged.items()) or "none"
        kept = f"kept ({summary.heldout} of them held out; flagged: {flagged}, in flagged.jsonl)"
        print(ledger_line(Stage.VALIDATE, summary.examples_in, summary.valid, layout.rejects(layout.validated), kept))
    return summary


if __name__ == "__main__":
    stage_main(validate_flow, __doc__)
