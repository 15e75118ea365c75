"""The aggregate stage on a data folder: the rater tables checked, then every validated example scored."""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from selectit.checks.ratings import check_ratings
from selectit.config import AggregateConfig
from selectit.core.layout import Layout
from selectit.core.records import iter_example_records, read_rejects, write_rejects
from selectit.scoring.tables import read_ratings, reject_unreadable, score_ratings
from selectit.summaries import AggregateSummary


def aggregate_folder(raters: list[str], cfg: AggregateConfig, num_prompts: int, layout: Layout) -> AggregateSummary:
    """Sentence and model level from the stored probability tables of every rater; the
    scores table and the rejects are written, the summary returned.

    The ratings pass a Great Expectations check first (Data Docs in
    reports/ratings): valid probabilities and digit mass, and exactly one rating
    per validated example, rater and prompt; `RatingCheckFailed` otherwise."""
    # The first rater's reason for each example some rater could not read, by (source, row).
    unfit_at: dict[tuple[str, int], str] = {}
    for rater in raters:
        for reject in read_rejects(layout.rejects(layout.rater_scores(rater))):
            unfit_at.setdefault((reject.source, reject.row), reject.reason)
    # The validated records are streamed: only the ids stay, and the few unreadable examples.
    expected_ids: set[str] = set()
    unfit: dict[str, str] = {}
    unreadable = []
    for example in iter_example_records(layout.examples(layout.validated)):
        reason = unfit_at.get((example.source, example.row))
        if reason is None:
            expected_ids.add(example.id)
        else:
            unfit.setdefault(example.id, reason)
            unreadable.append(example)
    ratings = pa.concat_tables([read_ratings(layout.ratings_table(r)) for r in raters])
    ratings, rejects = reject_unreadable(unreadable, ratings, unfit)
    # Raises RatingCheckFailed naming the failed expectations, e.g. ratings missing for
    # validated examples (re-run the score stage) or probabilities out of range.
    checks = check_ratings(ratings, expected_ids, raters, num_prompts, docs_dir=layout.rating_docs)
    scores = score_ratings(ratings, cfg, layout.scores_table)
    write_rejects(rejects, layout.rejects(layout.aggregated))
    return AggregateSummary(
        examples=scores.table.num_rows,
        rejects=len(rejects),
        nan_scores=scores.nan_scores,
        weights=scores.weights,
        quantiles=scores.quantiles,
        mass=checks.mass,
        rating_checks=checks.expectations,
        settings={"aggregate": dataclasses.asdict(cfg)},
    )
