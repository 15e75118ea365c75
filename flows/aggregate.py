"""Stage 4: sentence and model level scores from the stored probability tables."""

# No `from __future__ import annotations`: Prefect builds a pydantic model of the flow's
# parameters, and a served deployment cannot resolve RunContext from a string annotation.

import dataclasses
from functools import partial

from prefect import flow

from flows.common import stage_main, tracked_stage
from selectit.context import RunContext
from selectit.core.catalog import rater_name
from selectit.core.stages import Stage
from selectit.plots import histogram_png
from selectit.provenance import code_version
from selectit.scoring.tables import read_scores
from selectit.stages import load_current
from selectit.summaries import AggregateSummary, ledger_line
from selectit.tracking import lineage
from tasks.aggregate import aggregate_scores, write_scored_embeddings


@flow(name=Stage.AGGREGATE.value, log_prints=True, version=code_version(__name__))
def aggregate_flow(context: RunContext) -> AggregateSummary:
    params, layout = context.params, context.layout
    with tracked_stage(context, Stage.AGGREGATE, {"aggregate": dataclasses.asdict(params.aggregate)}, __name__) as log:
        raters = [rater_name(r) for r in params.score.raters]
        AggregateSummary.discard(layout.aggregated)
        for rater in params.score.raters:
            load_current(Stage.SCORE, layout, params, rater)
        summary = aggregate_scores(raters, params.aggregate, params.score.num_prompts, layout)
        summary = dataclasses.replace(summary, embeddings=write_scored_embeddings(params.score, layout))
        summary.save(layout.aggregated)
        log.metrics(summary.headline(), headline=True)
        if summary.embeddings:
            log.tags({f"embeddings.{k}": v for k, v in summary.embeddings.items()})
        log.tags(
            {
                **lineage.input_tags(log, Stage.VALIDATE, layout.examples(layout.validated)),
                **lineage.output_sha(layout.scores_table),
            }
        )
        log.artifact(layout.rating_docs, "aggregate/rating_checks")
        scores = read_scores(layout.scores_table)["model_score"].to_numpy()
        log.figure(partial(histogram_png, scores, "SelectIT model-level scores"), "aggregate/score_histogram.png")
        rows_in = summary.examples + summary.rejects
        print(ledger_line(Stage.AGGREGATE, rows_in, summary.examples, layout.rejects(layout.aggregated), "scored"))
    return summary


if __name__ == "__main__":
    stage_main(aggregate_flow, __doc__)
