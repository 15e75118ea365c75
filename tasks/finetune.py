"""Task of the finetune stage: build one variant's training set and train on it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import Params
from selectit.core.io import file_sha256
from selectit.core.layout import Layout
from selectit.core.records import read_example_records
from selectit.finetune.train import checkpoint_key, finetune
from selectit.finetune.variants import variant_examples
from selectit.provenance import code_version
from selectit.rating.models import resolve
from selectit.scoring.tables import read_scores
from selectit.summaries import FinetuneSummary

log = logging.getLogger(__name__)


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
    selected = layout.selected_ids.read_text(encoding="utf-8").split()
    data = variant_examples(variant, pool, ranked, selected, cfg.seed)
    source = resolve(cfg.base_model, cfg.trust_remote_code)
    key = checkpoint_key(cfg, source.content_id, data.examples) if variant != "base" else source.content_id
    folder = layout.finetuned(variant)
    previous = _finished(folder, key, variant)
    if previous is not None:
        log.info("%s: trained before with these settings and data; re-using %s", variant, folder)
        return previous

    started = time.perf_counter()
    if variant == "base":
        result = None
    else:
        log.info("%s: training on %d examples", variant, len(data.examples))
        result = finetune(
            data.examples,
            cfg,
            source.location,
            source.content_id,
            layout.finetuned_model(variant),
            layout.finetune_checkpoints(variant),
            report_to_mlflow=report_to_mlflow,
            progress=progress,
        )
    summary = FinetuneSummary(
        variant=variant,
        examples=len(data.examples),
        steps=result.steps if result else 0,
        first_loss=result.first_loss if result else None,
        last_loss=result.last_loss if result else None,
        train_loss=result.train_loss if result else None,
        resumed_from_step=result.resumed_from_step if result else 0,
        seconds=round(time.perf_counter() - started, 1),
        base_model=cfg.base_model,
        base_content_id=source.content_id,
        method=cfg.method if result else "none",
        run_key=key,
        data_sha256=hashlib.sha256(json.dumps([e.id for e in data.examples]).encode()).hexdigest(),
        selection_sha256=file_sha256(layout.selected_ids),
        settings={"finetune": dataclasses.asdict(cfg)},
    )
    summary.save(folder)
    return summary


def _finished(folder, key: str, variant: str) -> FinetuneSummary | None:
    try:
        summary = FinetuneSummary.load(folder)
    except Exception:  # missing or from another version: train anew
        return None
    has_model = variant == "base" or (folder / "model").is_dir()
    return summary if summary.run_key == key and has_model else None
