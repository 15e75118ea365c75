from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import AggregateConfig
from selectit.layout import Layout
from selectit.checks.ratings import check_ratings
from selectit.ingest.records import Reject, read_example_records, write_rejects
from selectit.scoring.tables import aggregate, without_examples, write_parquet
from tasks.common import write_json


def _rater_rejects(layout: Layout, rater: str) -> list[dict]:
    path = layout.rater_scores(rater) / "rejects.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@task(name="aggregate-scores", cache_policy=NO_CACHE)
def aggregate_scores(raters: list[str], cfg: AggregateConfig, num_prompts: int, layout: Layout) -> dict:
    """Sentence and model level from the stored probability tables of every rater.

    The ratings pass a Great Expectations check first (Data Docs in
    reports/ratings): valid probabilities and digit mass, and exactly one rating
    per validated example, rater and prompt; `RatingCheckFailed` otherwise."""
    examples = read_example_records(layout.validated / "examples.jsonl")
    rejected: dict[str, Reject] = {}
    by_key = {(e.source, e.row): e.id for e in examples}
    for rater in raters:
        for r in _rater_rejects(layout, rater):
            example_id = by_key.get((r["source"], r["row"]))
            rejected.setdefault(example_id, Reject(r["source"], r["row"], r["line"], r["reason"], r["raw"]))
    ratings = pa.concat_tables([pq.read_table(layout.rater_scores(r) / "ratings.parquet") for r in raters])
    # An example one rater could not read has no model-level score: it leaves every rater's table.
    ratings = without_examples(ratings, rejected)
    expected = {e.id for e in examples} - set(rejected)
    # Raises RatingCheckFailed naming the failed expectations, e.g. ratings missing for
    # validated examples (re-run the score stage) or probabilities out of range.
    checks = check_ratings(ratings, expected, raters, num_prompts, docs_dir=layout.reports / "ratings")
    scores, weights = aggregate(ratings, cfg.alpha, cfg.authors_softmax, cfg.weights)
    write_parquet(scores, layout.aggregated / "scores.parquet")
    write_rejects(list(rejected.values()), layout.aggregated / "rejects.jsonl")
    values = scores["model_score"].to_numpy()
    summary = {
        "examples": scores.num_rows,
        "rejects": len(rejected),
        "weights": weights,
        "params": {"aggregate": vars(cfg)},
        "rating_checks": checks.expectations,
        "mass": checks.mass,
        "nan_scores": int(np.isnan(values).sum()),
        "quantiles": dict(zip(["min", "p25", "median", "p75", "max"],
                              np.nanquantile(values, [0, 0.25, 0.5, 0.75, 1]).tolist())),
    }
    write_json(layout.aggregated / "summary.json", summary)
    return summary
