from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.selection.card import dataset_card
from selectit.config import Params
from selectit.layout import Layout
from selectit.rating.models import rater_name
from selectit.ingest.records import atomic_write, read_example_records
from selectit.selection.top import select_top
from selectit.tracking.runs import flatten
from tasks.common import read_json, write_json

SELECTION_FILE = "selective_alpaca.json"


def _count_lines(path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else 0


@task(name="select-top", cache_policy=NO_CACHE)
def select_examples(params: Params, layout: Layout, command: str) -> dict:
    """The top R% as Alpaca JSON, the ids left out, and a dataset card."""
    scores = pq.read_table(layout.aggregated / "scores.parquet").sort_by("rank")
    kept, left_out = select_top(scores, params.select.ratio)
    examples = {e.id: e for e in read_example_records(layout.validated / "examples.jsonl")}
    kept_set = set(kept)
    # Input order, so the selection reads like a filtered copy of the source.
    rows = [{"instruction": e.instruction, "input": e.input, "output": e.output}
            for e in examples.values() if e.id in kept_set]
    out = layout.selected
    atomic_write(out / SELECTION_FILE, lambda f: f.write((json.dumps(rows, indent=2, ensure_ascii=False) + "\n").encode()))
    atomic_write(out / "excluded_ids.txt", lambda f: f.write("".join(i + "\n" for i in left_out).encode()))

    ingested = read_json(layout.ingested / "summary.json")
    counts = {
        "rows_read": ingested["examples_read"] + ingested["rejects"],
        "rejected_at_ingest": ingested["rejects"],
        "duplicates_among_them": ingested["duplicates"],
        "used_after_limit": ingested["examples"],
        "rejected_at_validation": _count_lines(layout.validated / "rejects.jsonl"),
        "rejected_at_scoring": _count_lines(layout.aggregated / "rejects.jsonl"),
        "scored": scores.num_rows,
        "selected": len(kept),
    }
    raters = [read_json(layout.rater_scores(r) / "summary.json") for r in _rater_names(params)]
    aggregated = read_json(layout.aggregated / "summary.json")
    # Each stage recorded the settings it ran with; the card shows those, so it
    # describes the data as produced even when only this stage re-ran.
    used = {**ingested["params"], **read_json(layout.validated / "summary.json")["params"],
            **raters[0]["params"], **aggregated["params"], "select": vars(params.select)}
    values = scores["model_score"].to_numpy()
    kept_values = values[: len(kept)]  # sorted by rank above: best first
    card = dataset_card(
        name="Selective Alpaca",
        sources=ingested["sources"],
        counts=counts,
        params=flatten(used),
        raters=raters,
        weights=aggregated["weights"],
        scores=values,
        kept_scores=kept_values,
        command=command,
    )
    atomic_write(out / "dataset_card.md", lambda f: f.write(card.encode()))
    summary = {"selected": len(kept), "left_out": len(left_out), "ratio": params.select.ratio,
               "lowest_kept_score": float(np.min(kept_values)) if len(kept_values) else None}
    write_json(out / "summary.json", summary)
    return summary


def _rater_names(params: Params) -> list[str]:
    return [rater_name(r) for r in params.score.raters]
