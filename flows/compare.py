"""Stage 8: compare the variants: does the selection pay off?"""

# No `from __future__ import annotations`: Prefect builds a pydantic model of the flow's
# parameters, and a served deployment cannot resolve RunContext from a string annotation.

import dataclasses

from prefect import flow

from flows.common import stage_main, tracked_stage
from selectit.context import RunContext
from selectit.core.stages import Stage
from selectit.evaluation.compare import Comparison
from selectit.evaluation.comparison import write_switched_off
from selectit.provenance import code_version
from tasks.compare import compare


@flow(name=Stage.COMPARE.value, log_prints=True, version=code_version(__name__))
def compare_flow(context: RunContext) -> Comparison:
    params, layout = context.params, context.layout
    with tracked_stage(context, Stage.COMPARE, {"evaluate": dataclasses.asdict(params.evaluate)}, __name__) as log:
        comparison = compare(params, layout)
        # `<variant>.<metric>` on this run and the pipeline's parent run, as in the DVC metrics file.
        metrics = {
            f"{variant}.{name}": value
            for variant in comparison.variants
            for name, value in comparison.mlflow_metrics(variant).items()
        }
        log.metrics(metrics)
        log.parent_metrics(metrics)
        log.artifact(layout.comparison, Stage.COMPARE)
        print(comparison.to_markdown())
    return comparison


if __name__ == "__main__":
    stage_main(compare_flow, __doc__, switched_off=lambda context, args: write_switched_off(context.layout.comparison))
