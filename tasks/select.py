"""Task of the select stage: the top R% as Alpaca JSON, the ids kept and left out, a dataset card."""

from __future__ import annotations

import dataclasses

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import Params
from selectit.core.io import write_text
from selectit.core.layout import Layout
from selectit.core.records import iter_example_records
from selectit.provenance import code_version
from selectit.scoring.tables import read_scores
from selectit.selection.card import run_card
from selectit.selection.output import write_selection
from selectit.summaries import SelectSummary


@task(name="select-top", cache_policy=NO_CACHE, version=code_version(__name__))
def select_examples(params: Params, layout: Layout, shown_source: str, command: str) -> SelectSummary:
    """Write the selection (input order), the ids kept and left out, and the dataset card.

    `shown_source` is the source as the card names it (see `run_card`)."""
    selection = write_selection(
        read_scores(layout.scores_table),
        iter_example_records(layout.examples(layout.validated)),
        params.select.ratio,
        layout.selection,
        layout.selected_ids,
        layout.excluded_ids,
        # Examples the aggregate stage rejected were validated but never scored.
        allow_unscored=True,
    )
    write_text(layout.dataset_card, run_card(params, layout, selection, shown_source, command))
    summary = SelectSummary(
        selected=len(selection.kept),
        left_out=len(selection.left_out),
        ratio=params.select.ratio,
        lowest_kept_score=selection.lowest_kept_score,
        settings={"select": dataclasses.asdict(params.select)},
    )
    summary.save(layout.selected)
    return summary
