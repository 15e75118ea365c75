"""Stage 3: rate the validated examples with one rater, shard by shard (each saved when done)."""

# No `from __future__ import annotations`: Prefect builds a pydantic model of the flow's
# parameters, and a served deployment cannot resolve RunContext from a string annotation.

import dataclasses

from prefect import flow

from flows.common import stage_main, tracked_stage
from selectit.context import RunContext
from selectit.errors import ParamsError
from selectit.ingest.records import read_example_records
from selectit.provenance import code_version
from selectit.rating.models import rater_name
from selectit.rating.rate import RaterSession
from selectit.rating.shards import rater_cache
from selectit.summaries import ScoreSummary, ValidateSummary
from tasks.score import collect, plan, score_shard


@flow(name="score", flow_run_name="score-{rater}", log_prints=True, version=code_version(__name__))
def score_flow(context: RunContext, rater: str) -> ScoreSummary:
    """`rater` is one entry of score.raters, as written there (DVC's stage is `score@<rater>`)."""
    cfg, layout = context.params.score, context.layout
    if rater not in cfg.raters:
        raise ParamsError(f"{context.params_path}: score.raters: {rater!r} is not one of {cfg.raters}")
    name = rater_name(rater)
    settings = {"score": dataclasses.asdict(cfg), "rater": rater}
    with tracked_stage(context, f"score@{name}", settings, __name__, dvc_stage=f"score@{rater}") as log:
        ScoreSummary.discard(layout.rater_scores(name))
        ValidateSummary.load_current(layout.validated, "validate", "validate", context.params.validate)
        examples = read_example_records(layout.examples(layout.validated))
        # The session keeps the model loaded from the first shard to the last.
        session = RaterSession(rater, cfg, rater_cache(layout.shard_cache, rater, cfg))
        try:
            shards = plan(session, examples)
            texts_run = sum(
                score_shard(session, shard, name, index, len(shards), context.progress)
                for index, shard in enumerate(shards)
            )
            summary = collect(session, examples, layout, name, texts_run, len(shards))
        finally:
            session.close()
        log.metrics(summary.headline(), headline=True)
        log.tags({"cache_key": summary.cache_key})
    return summary


if __name__ == "__main__":
    stage_main(score_flow, __doc__, lambda p: p.add_argument("--rater", required=True, help="one of score.raters"))
