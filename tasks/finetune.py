"""Task of the finetune stage: build one variant's training set and train on it."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import DIVERSITY_VARIANTS, Params
from selectit.core.errors import InputError
from selectit.core.io import file_sha256
from selectit.core.layout import Layout
from selectit.core.records import read_example_records
from selectit.finetune.run import finetune_variant
from selectit.finetune.variants import variant_examples
from selectit.provenance import code_version
from selectit.scoring.tables import read_scores
from selectit.summaries import FinetuneSummary


@task(
    name="finetune-variant", task_run_name="finetune-{variant}", cache_policy=NO_CACHE, version=code_version(__name__)
)
def train_variant(
    params: Params, layout: Layout, variant: str, report_to_mlflow: bool, progress: bool = True
) -> FinetuneSummary:
    """Train `variant` unless its folder already holds the result of these exact
    settings, base model and data (then that result is returned as it is)."""
    cfg = params.finetune
    # DVC keeps the checkpoint folder between runs (a persisted output), so it must
    # exist even when no run of this variant is unfinished.
    layout.finetune_checkpoints(variant).mkdir(parents=True, exist_ok=True)
    pool = read_example_records(layout.examples(layout.validated))
    ranked = read_scores(layout.scores_table).sort_by("rank")["example_id"].to_pylist()
    selected = _selected_ids(layout, variant)
    data = variant_examples(variant, pool, ranked, selected, cfg.seed, _method_scores(layout, variant))
    return finetune_variant(
        variant,
        None if variant == "base" else data.examples,
        cfg,
        layout.finetuned(variant),
        layout.finetune_checkpoints(variant),
        selection_sha256=file_sha256(_selection_file(layout, variant)),
        report_to_mlflow=report_to_mlflow,
        progress=progress,
    )


def _selection_file(layout: Layout, variant: str) -> Path:
    """The selection a variant is built against: a diversity variant's own mode's selection."""
    if variant in DIVERSITY_VARIANTS:
        return layout.diverse_selection_ids(DIVERSITY_VARIANTS[variant])
    return layout.selected_ids


def _selected_ids(layout: Layout, variant: str) -> list[str]:
    path = _selection_file(layout, variant)
    if not path.is_file():
        raise InputError(
            f"variant {variant!r}: {path} not found; the select stage writes it when the score stage "
            "writes embeddings: run the select stage again"
        )
    return path.read_text(encoding="utf-8").split()


def _method_scores(layout: Layout, variant: str) -> dict[str, dict[str, float]] | None:
    """The select stage's scores of the selector `variant` names (ifd, learned), if it wrote them."""
    path = layout.method_scores
    if not path.is_file() or variant not in pq.read_schema(path).names:
        return None
    table = pq.read_table(path, columns=["example_id", variant])
    values = [math.nan if v is None else v for v in table[variant].to_pylist()]
    return {variant: dict(zip(table["example_id"].to_pylist(), values, strict=True))}
