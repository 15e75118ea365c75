"""Task of the select stage: the top R% by select.method as Alpaca JSON, the ids kept and left out, a dataset card."""

from __future__ import annotations

import dataclasses

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.audit.selectors import needed_selectors, selector_scores, write_selector_outputs
from selectit.config import Params
from selectit.core.io import write_text
from selectit.core.layout import Layout
from selectit.core.records import iter_example_records, read_example_records
from selectit.provenance import code_version
from selectit.rating_params import rating_settings
from selectit.scoring.tables import read_scores
from selectit.selection.card import run_card
from selectit.selection.methods import SELECTIT, method_ranking
from selectit.selection.output import write_selection
from selectit.summaries import SelectSummary


@task(name="select-top", cache_policy=NO_CACHE, version=code_version(__name__))
def select_examples(
    params: Params, layout: Layout, shown_source: str, command: str, progress: bool = True
) -> SelectSummary:
    """Write the selection (input order), the ids kept and left out, and the dataset card; and
    the scores of the other selectors the run needs (select.method, the selector variants).

    `shown_source` is the source as the card names it (see `run_card`)."""
    # DVC keeps the selectors' cache between runs (a persisted output), so it exists even when unused.
    layout.selector_cache.mkdir(parents=True, exist_ok=True)
    scores = read_scores(layout.scores_table)
    ranked = scores.sort_by("rank")["example_id"].to_pylist()
    method = params.select.method
    ranking, ranking_scores = None, None
    selectors = needed_selectors(params)
    found = None
    if selectors:
        scored = set(ranked)
        pool = [e for e in read_example_records(layout.examples(layout.validated)) if e.id in scored]
        found = selector_scores(
            params, layout, pool, rating_settings(params.score), selectors=selectors, progress=progress
        )
        if method != SELECTIT:
            ranking = method_ranking(method, selectit_ranked=ranked, pool=pool, scores=found.scores[method])
            ranking_scores = found.scores[method]
    write_selector_outputs(found, layout, ranked)
    selection = write_selection(
        scores,
        iter_example_records(layout.examples(layout.validated)),
        params.select.ratio,
        layout.selection,
        layout.selected_ids,
        layout.excluded_ids,
        # Examples the aggregate stage rejected were validated but never scored.
        allow_unscored=True,
        ranking=ranking,
        ranking_scores=ranking_scores,
    )
    write_text(layout.dataset_card, run_card(params, layout, selection, shown_source, command))
    summary = SelectSummary(
        selected=len(selection.kept),
        left_out=len(selection.left_out),
        ratio=params.select.ratio,
        lowest_kept_score=selection.lowest_kept_score,
        settings={"select": dataclasses.asdict(params.select), "score": dataclasses.asdict(params.score)},
    )
    summary.save(layout.selected)
    return summary
