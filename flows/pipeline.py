"""The whole pipeline in one flow: ingest, validate, score (each rater), aggregate, select,
the audit of the scores against judged pairs (a note only, when audit.enabled is off),
then finetune and evaluate (each variant), compare, and the run report.

One run context and one MLflow parent run for all stages. Where the run writes
the project's own data folder, each finished stage is recorded in DVC as
`dvc repro` would record it, so `dvc status` is clean afterwards."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

from prefect import flow

from flows.aggregate import aggregate_flow
from flows.audit import audit_flow
from flows.common import command_main, open_context
from flows.compare import compare_flow
from flows.evaluate import evaluate_flow
from flows.finetune import finetune_flow
from flows.ingest import ingest_flow
from flows.prefect_runtime import server_that_outlives_ctrl_c
from flows.report import report_flow
from flows.score import score_raters
from flows.select import select_flow
from flows.validate import validate_flow
from selectit.core.stages import Stage, stage_id
from selectit.evaluation.compare import Comparison
from selectit.provenance import code_version
from selectit.summaries import StageSummary


@dataclass
class PipelineResult:
    stages: dict[str, StageSummary]  # by DVC stage name: ingest, validate, score@<rater>, ..., evaluate@<variant>
    comparison: Comparison | None  # None when finetune.enabled is false (selection only)
    seconds: float


@flow(name="selectit-pipeline", log_prints=True, version=code_version(__name__))
def pipeline_flow(params_path: str, data_dir: str, progress: bool = True, run_audit: bool = True) -> PipelineResult:
    """`run_audit=False` skips the audit stage even where audit.enabled is on (the scheduled deployment)."""
    context = open_context(params_path, data_dir, progress)
    started = time.perf_counter()
    tracker = context.tracker()
    run_name = f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}"
    with tracker.pipeline(run_name, dataclasses.asdict(context.params), context.layout.root) as run_id:
        context = context.under_pipeline_run(run_id)
        if not context.record_in_dvc:
            logging.getLogger(__name__).info(
                "not recorded in DVC: %s is not the data folder of the DVC project at %s",
                context.layout.root,
                context.project_root,
            )
        stages: dict[str, StageSummary] = {
            Stage.INGEST: ingest_flow(context),
            Stage.VALIDATE: validate_flow(context),
        }
        stages.update({stage_id(Stage.SCORE, rater): summary for rater, summary in score_raters(context).items()})
        stages[Stage.AGGREGATE] = aggregate_flow(context)
        stages[Stage.SELECT] = select_flow(context)
        if run_audit:
            # With audit.enabled off it only writes a note saying so: DVC's stage is then
            # recorded like the others, and no earlier audit is taken for this run's.
            stages[Stage.AUDIT] = audit_flow(context)
        comparison = None
        if context.params.finetune.enabled:
            for variant in context.params.finetune.variants:
                stages[stage_id(Stage.FINETUNE, variant)] = finetune_flow(context, variant)
            for variant in context.params.finetune.variants:
                stages[stage_id(Stage.EVALUATE, variant)] = evaluate_flow(context, variant)
            comparison = compare_flow(context)
        else:
            print("selection only (finetune.enabled: false): nothing is fine-tuned, evaluated or compared")
        report = report_flow(context)
        tracker.client.set_tag(run_id, "code_version", code_version(__name__))
    result = PipelineResult(stages, comparison, time.perf_counter() - started)
    compared = f"the variants compared -> {context.layout.comparison}; " if comparison is not None else ""
    print(
        f"pipeline finished in {result.seconds:.0f} s: {stages[Stage.SELECT].selected} examples selected "
        f"-> {context.layout.selection}; {compared}the report -> {report.html}"
    )
    return result


def main() -> None:
    def run(args):
        # A broken params.yaml, a read-only folder or a broken benchmark file is one line, before Prefect starts.
        open_context(args.params, args.data).check_ready()
        with server_that_outlives_ctrl_c():
            pipeline_flow(args.params, args.data, progress=not args.no_progress)

    command_main(
        "pipeline",
        __doc__,
        run,
        lambda parser: parser.add_argument("--no-progress", action="store_true", help="no progress bars"),
    )


if __name__ == "__main__":
    main()
