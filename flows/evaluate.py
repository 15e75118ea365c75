"""Stage 7: evaluate one variant: held-out loss and benchmarks, one score per question."""

# No `from __future__ import annotations`: Prefect builds a pydantic model of the flow's
# parameters, and a served deployment cannot resolve RunContext from a string annotation.

import dataclasses

from prefect import flow

from flows.common import stage_main, tracked_stage
from selectit.context import RunContext
from selectit.core.errors import ParamsError
from selectit.core.stages import Stage, stage_id
from selectit.provenance import code_version
from selectit.summaries import EvaluateSummary
from selectit.tracking import lineage
from tasks.evaluate import evaluate_variant
from tasks.switched_off import write_switched_off_variant


@flow(name=Stage.EVALUATE.value, flow_run_name="evaluate-{variant}", log_prints=True, version=code_version(__name__))
def evaluate_flow(context: RunContext, variant: str) -> EvaluateSummary:
    """`variant` is one entry of finetune.variants (DVC's stage is `evaluate@<variant>`)."""
    params, layout = context.params, context.layout
    if variant not in params.finetune.variants:
        raise ParamsError(
            f"{context.params_path}: finetune.variants: {variant!r} is not one of {params.finetune.variants}"
        )
    with tracked_stage(
        context, stage_id(Stage.EVALUATE, variant), {"evaluate": dataclasses.asdict(params.evaluate)}, __name__
    ) as log:
        summary = evaluate_variant(params, layout, variant, context.progress)
        # The variant's means under the metric names the comparison and DVC use; the
        # compare stage puts them, with intervals, on the pipeline's parent run.
        log.metrics(summary.means)
        log.tags(
            {
                "variant": variant,
                "finetune_run_key": summary.finetune_run_key,
                **lineage.input_tags(log, stage_id(Stage.FINETUNE, variant), layout.finetuned_model(variant)),
            }
        )
        log.artifact(layout.evaluation(variant), f"evaluate/{variant}")
    return summary


if __name__ == "__main__":
    stage_main(
        evaluate_flow,
        __doc__,
        lambda p: p.add_argument("--variant", required=True, help="one of finetune.variants"),
        switched_off=lambda context, args: write_switched_off_variant(context.layout, Stage.EVALUATE, args["variant"]),
    )
