"""Stage 6: fine-tune the base model on one variant's data (the selection or a baseline)."""

# No `from __future__ import annotations`: Prefect builds a pydantic model of the flow's
# parameters, and a served deployment cannot resolve RunContext from a string annotation.

import dataclasses

from prefect import flow

from flows.common import stage_main, tracked_stage
from selectit.context import RunContext
from selectit.core.errors import ParamsError
from selectit.core.stages import Stage, stage_id
from selectit.finetune.train import mlflow_environment
from selectit.provenance import code_version
from selectit.summaries import FinetuneSummary
from selectit.tracking import lineage
from tasks.finetune import train_variant
from tasks.switched_off import write_switched_off_variant


# log_prints off: `datasets` fingerprints functions with dill, which disassembles them
# through print() into a captured stdout; Prefect's print logging would log every line.
@flow(name=Stage.FINETUNE.value, flow_run_name="finetune-{variant}", log_prints=False, version=code_version(__name__))
def finetune_flow(context: RunContext, variant: str) -> FinetuneSummary:
    """`variant` is one entry of finetune.variants (DVC's stage is `finetune@<variant>`)."""
    cfg, layout = context.params.finetune, context.layout
    if variant not in cfg.variants:
        raise ParamsError(f"{context.params_path}: finetune.variants: {variant!r} is not one of {cfg.variants}")
    settings = {"finetune": dataclasses.asdict(cfg)}
    with tracked_stage(context, stage_id(Stage.FINETUNE, variant), settings, __name__) as log:
        # The trainer's own MLflow callback streams the losses into this stage's run.
        with mlflow_environment(log.client.tracking_uri, log.run_id):
            summary = train_variant(context.params, layout, variant, report_to_mlflow=True, progress=context.progress)
        log.metrics(summary.headline(), headline=True)
        log.tags(
            {
                "variant": variant,
                "run_key": summary.run_key,
                "base_content_id": summary.base_content_id,
                **lineage.input_tags(log, Stage.SELECT, layout.selected_ids),
                **lineage.output_sha(layout.finetuned_model(variant)),
            }
        )
    return summary


if __name__ == "__main__":
    stage_main(
        finetune_flow,
        __doc__,
        lambda p: p.add_argument("--variant", required=True, help="one of finetune.variants"),
        switched_off=lambda context, args: write_switched_off_variant(context.layout, Stage.FINETUNE, args["variant"]),
    )
