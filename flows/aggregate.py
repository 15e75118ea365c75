"""Stage 4: sentence and model level scores from the stored probability tables."""

from __future__ import annotations

import pyarrow.parquet as pq
from prefect import flow

from flows.common import setup, stage_main
from selectit.rating.models import rater_name
from tasks.aggregate import aggregate_scores


@flow(name="aggregate", log_prints=True)
def aggregate_flow(params_path: str, data_dir: str) -> dict:
    params, layout, tracker = setup(params_path, data_dir)
    with tracker.stage("aggregate", {"aggregate": vars(params.aggregate)}) as log:
        raters = [rater_name(r) for r in params.score.raters]
        summary = aggregate_scores(raters, params.aggregate, params.score.num_prompts, layout)
        log.metrics({"examples": summary["examples"], "rejects": summary["rejects"],
                     "nan_scores": summary["nan_scores"],
                     **{f"score_{k}": v for k, v in summary["quantiles"].items()},
                     **{f"weight.{k}": v for k, v in summary["weights"].items()}})
        # Digit mass per rater: mass_mean.<rater>, ..., top_is_digit_share.<rater>.
        log.metrics({(stat if stat == "top_is_digit_share" else f"mass_{stat}") + f".{rater}": value
                     for rater, stats in summary["mass"].items() for stat, value in stats.items()})
        log.artifact(layout.reports / "ratings", "aggregate/rating_checks")
        scores = pq.read_table(layout.aggregated / "scores.parquet")["model_score"].to_numpy()
        log.figure_histogram(scores, "SelectIT model-level scores", "aggregate/score_histogram.png")
    return summary


if __name__ == "__main__":
    stage_main(aggregate_flow, __doc__)
