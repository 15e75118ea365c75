"""Everything the report reads from a finished run's data folder, loaded once.

Only the selection stages (validate, score, aggregate, select) must have run; the
fine-tuning, evaluation and comparison outputs are shown when they are there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from selectit.audit.report import AuditReport
from selectit.config import Params
from selectit.core.catalog import rater_name
from selectit.core.errors import InputError
from selectit.core.layout import Layout
from selectit.core.records import Example, Reject, read_example_records, read_rejects
from selectit.evaluation.compare import Comparison
from selectit.evaluation.comparison import load_comparison
from selectit.finetune.train import LOSS_HISTORY
from selectit.scoring.tables import read_ratings, read_scores, with_token_scores
from selectit.summaries import (
    AggregateSummary,
    FinetuneSummary,
    ScoreSummary,
    SelectSummary,
    ValidateSummary,
    require_selection_stages,
)

COMPARISON_JSON = "comparison.json"


@dataclass
class RunData:
    params: Params
    layout: Layout
    raters: list[str]  # names as the tables use them
    examples: dict[str, Example]  # validated (scored) examples by id
    ratings: pa.Table  # every rater's ratings.parquet, concatenated
    scores: pd.DataFrame  # scores.parquet, best first
    selected: list[str]  # selected_ids.txt, best first
    validate: ValidateSummary | None
    aggregate: AggregateSummary
    select: SelectSummary
    score: dict[str, ScoreSummary]
    validate_rejects: list[Reject]
    comparison: Comparison | None = None  # comparison.json when the compare stage has run (fine-tuning on)
    audit: AuditReport | None = None  # audit.json when the audit stage has run, switched on
    diversity: dict | None = None  # diversity.json of the select stage (selectit/selection/coverage.py)
    finetune: dict[str, FinetuneSummary] = field(default_factory=dict)
    # variant -> [(step, loss)]: every logged loss (loss_history.json beside the model), else
    # the first and last, which the finetune summary keeps (results trained before it was saved).
    losses: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return float(self.select.ratio)

    @property
    def ratings_frame(self) -> pd.DataFrame:
        """One row per (example, rater, prompt): the scalar columns and the K probabilities."""
        frame = self.ratings.drop_columns(["probs"]).to_pandas()
        frame["probs"] = list(np.asarray(self.ratings["probs"].to_pylist(), dtype=float))
        return frame


def _optional(load, *args):
    try:
        return load(*args)
    except InputError:
        return None


def load_run(params: Params, layout: Layout) -> RunData:
    """Read a run; a missing output of the selection stages names the stage to run."""
    raters = [rater_name(r) for r in params.score.raters]
    require_selection_stages(layout, raters)
    score = {r: ScoreSummary.load(layout.rater_scores(r), r) for r in raters}
    aggregate = AggregateSummary.load(layout.aggregated)
    select = SelectSummary.load(layout.selected)
    # The figures and tables show the token-level score the selection was made from.
    ratings = with_token_scores(
        pa.concat_tables([read_ratings(layout.ratings_table(r)) for r in raters]), params.aggregate
    )
    scores = read_scores(layout.scores_table).to_pandas().sort_values("rank").reset_index(drop=True)
    examples = {e.id: e for e in read_example_records(layout.examples(layout.validated))}
    selected = layout.selected_ids.read_text(encoding="utf-8").split()
    validate_rejects = layout.rejects(layout.validated)
    run = RunData(
        params=params,
        layout=layout,
        raters=raters,
        examples=examples,
        ratings=ratings,
        scores=scores,
        selected=selected,
        validate=_optional(ValidateSummary.load, layout.validated),
        aggregate=aggregate,
        select=select,
        score=score,
        validate_rejects=read_rejects(validate_rejects) if validate_rejects.is_file() else [],
    )
    run.comparison = load_comparison(layout.comparison / COMPARISON_JSON)
    if layout.diversity_report.is_file():
        run.diversity = json.loads(layout.diversity_report.read_text(encoding="utf-8"))
    if layout.audit_report.is_file():
        run.audit = AuditReport.load(layout.audit_report, layout.rejects(layout.audit))
    for variant in params.finetune.variants:
        summary = _optional(FinetuneSummary.load, layout.finetuned(variant), variant)
        if summary is not None:
            run.finetune[variant] = summary
            history = layout.finetuned_model(variant) / LOSS_HISTORY
            if history.is_file():
                points = [(p["step"], p["loss"]) for p in json.loads(history.read_text(encoding="utf-8"))]
            else:
                points = [(1, summary.first_loss), (summary.steps, summary.last_loss)]
            kept = sorted({(s, v) for s, v in points if v is not None and s > 0})
            if kept:
                run.losses[variant] = kept
    return run
