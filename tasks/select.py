"""Task of the select stage: the top R% as Alpaca JSON, the ids left out, a dataset card."""

from __future__ import annotations

import dataclasses

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import Params
from selectit.core.catalog import rater_name
from selectit.core.io import write_text
from selectit.core.layout import Layout
from selectit.core.records import iter_example_records, write_json_list
from selectit.provenance import code_version
from selectit.scoring.tables import read_scores
from selectit.selection.card import dataset_card
from selectit.selection.top import select_top
from selectit.summaries import AggregateSummary, IngestSummary, ScoreSummary, SelectSummary, ValidateSummary


@task(name="select-top", cache_policy=NO_CACHE, version=code_version(__name__))
def select_examples(params: Params, layout: Layout, shown_source: str, command: str) -> SelectSummary:
    """Write the selection (input order), the ids left out and the dataset card.

    `shown_source` is the source as the card names it (as params.yaml spells it,
    not an absolute path on this machine)."""
    scores = read_scores(layout.scores_table).sort_by("rank")
    kept, left_out = select_top(scores, params.select.ratio)
    kept_set = set(kept)
    # Streamed from the validated records to the file: no example is held longer than its row.
    rows = (
        {"instruction": e.instruction, "input": e.input, "output": e.output}
        for e in iter_example_records(layout.examples(layout.validated))
        if e.id in kept_set
    )
    write_json_list(rows, layout.selection)
    write_text(layout.selected_ids, "".join(i + "\n" for i in kept))
    write_text(layout.excluded_ids, "".join(i + "\n" for i in left_out))

    ingested = IngestSummary.load(layout.ingested)
    validated = ValidateSummary.load(layout.validated)
    raters = [ScoreSummary.load(layout.rater_scores(rater_name(r))) for r in params.score.raters]
    aggregated = AggregateSummary.load(layout.aggregated)
    counts = {
        "rows_read": ingested.examples_read + ingested.rejects,
        "rejected_at_ingest": ingested.rejects,
        "duplicates_among_them": ingested.duplicates,
        "used_after_limit": ingested.examples,
        "rejected_at_validation": validated.rejects,
        "held_out_for_evaluation": validated.heldout,
        "rejected_at_scoring": aggregated.rejects,
        "scored": scores.num_rows,
        "selected": len(kept),
    }
    # Each stage recorded the settings it ran with; the card shows those, so it
    # describes the data as produced even when only this stage re-ran.
    settings = {
        **ingested.settings,
        **validated.settings,
        **raters[0].settings,
        **aggregated.settings,
        "select": dataclasses.asdict(params.select),
    }
    settings["ingest"] = {**settings["ingest"], "source": shown_source}
    values = scores["model_score"].to_numpy()
    kept_values = values[: len(kept)]  # ranked best first above
    sources = [{**s, "source": shown_source} for s in ingested.sources]
    write_text(
        layout.dataset_card,
        dataset_card(
            name="Selective Alpaca",
            sources=sources,
            counts=counts,
            settings=settings,
            raters=raters,
            weights=aggregated.weights,
            scores=values,
            kept_scores=kept_values,
            command=command,
        ),
    )
    summary = SelectSummary(
        selected=len(kept),
        left_out=len(left_out),
        ratio=params.select.ratio,
        lowest_kept_score=float(np.min(kept_values)) if len(kept_values) else None,
        settings={"select": dataclasses.asdict(params.select)},
    )
    summary.save(layout.selected)
    return summary
