"""Stage 5: keep the top R% by select.method as selective_alpaca.json, with a dataset card."""

# No `from __future__ import annotations`: Prefect builds a pydantic model of the flow's
# parameters, and a served deployment cannot resolve RunContext from a string annotation.

import dataclasses
import json
import os

import pandas as pd
from prefect import flow

from flows.common import stage_main, tracked_stage
from selectit.config import is_remote
from selectit.context import RunContext
from selectit.core.stages import Stage
from selectit.provenance import code_version
from selectit.scoring.pairwise import PairwiseModel
from selectit.selection.coverage import diversity_metrics
from selectit.stages import load_current
from selectit.summaries import SelectSummary
from selectit.tracking import lineage
from tasks.select import select_examples

REPRODUCE = "make run    # or: dvc repro"


@flow(name=Stage.SELECT.value, log_prints=True, version=code_version(__name__))
def select_flow(context: RunContext) -> SelectSummary:
    params, layout = context.params, context.layout
    source = params.ingest.source
    # The card names the source as params.yaml does, not by where it sits on this machine.
    shown = source if is_remote(source) else os.path.relpath(source, context.params_path.parent)
    with tracked_stage(context, Stage.SELECT, {"select": dataclasses.asdict(params.select)}, __name__) as log:
        SelectSummary.discard(layout.selected)
        load_current(Stage.AGGREGATE, layout, params)
        summary = select_examples(params, layout, shown, REPRODUCE, context.progress)
        log.metrics(summary.headline(), headline=True)
        log.metrics(diversity_metrics(json.loads(layout.diversity_report.read_text(encoding="utf-8"))))
        if layout.learned_model.is_file():
            # The learned selector's model and its cross-validated agreement on the judged pairs.
            model = PairwiseModel.load(layout.learned_model)
            log.metrics({"learned_cv_agreement": model.cv_agreement, "learned_pairs": model.pairs})
            log.artifact(layout.learned_model, Stage.SELECT)
        log.tags(
            {**lineage.input_tags(log, Stage.AGGREGATE, layout.scores_table), **lineage.output_sha(layout.selected_ids)}
        )
        log.artifact(layout.dataset_card, Stage.SELECT)
        log.artifact(layout.diversity_report, Stage.SELECT)
        log.dataset(pd.read_json(layout.selection), source=layout.selection, name="selective_alpaca", context="output")
        print(
            f"select: {summary.selected + summary.left_out} rows in, {summary.selected} kept "
            f"-> {layout.selection}, {summary.left_out} left out -> {layout.excluded_ids}"
        )
    return summary


if __name__ == "__main__":
    stage_main(select_flow, __doc__)
