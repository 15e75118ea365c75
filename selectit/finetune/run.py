"""One variant's fine-tuning run with its summary: what the finetune stage and `selectit finetune` both call."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from selectit.config import FinetuneConfig
from selectit.core.errors import InputError
from selectit.core.records import Example
from selectit.finetune.train import BASE_MODEL, checkpoint_key, finetune
from selectit.rating.models import resolve
from selectit.summaries import FinetuneSummary

log = logging.getLogger(__name__)


def finetune_variant(
    variant: str,
    examples: Sequence[Example] | None,
    cfg: FinetuneConfig,
    folder: Path,
    checkpoints: Path,
    *,
    selection_sha256: str | None = None,
    report_to_mlflow: bool = False,
    progress: bool = True,
) -> FinetuneSummary:
    """Train the base model on `examples` into `folder`/model and write `folder`/summary.json;
    `examples` None stands for the base model untuned (only the summary is written).

    Nothing is trained when `folder` already holds the result of these exact settings,
    base model and data: that result is returned as it is. `selection_sha256` is of the
    selection the variant was built against; by default the training examples themselves
    are the selection."""
    if examples is not None and not examples:
        raise InputError(f"finetune {variant}: no examples to train on; nothing was trained")
    source = resolve(cfg.base_model, cfg.trust_remote_code, role=BASE_MODEL)
    trained = examples or []
    key = source.content_id if examples is None else checkpoint_key(cfg, source.content_id, trained)
    folder = Path(folder)
    previous = _finished(folder, key, needs_model=examples is not None)
    if previous is not None:
        log.info("%s: trained before with these settings and data; re-using %s", variant, folder)
        return previous

    started = time.perf_counter()
    result = None
    if examples is not None:
        log.info("%s: training on %d examples", variant, len(trained))
        result = finetune(
            trained,
            cfg,
            source.location,
            source.content_id,
            folder / "model",
            checkpoints,
            report_to_mlflow=report_to_mlflow,
            progress=progress,
        )
    data_sha256 = hashlib.sha256(json.dumps([e.id for e in trained]).encode()).hexdigest()
    summary = FinetuneSummary(
        variant=variant,
        examples=len(trained),
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
        data_sha256=data_sha256,
        selection_sha256=selection_sha256 or data_sha256,
        settings={"finetune": dataclasses.asdict(cfg)},
    )
    summary.save(folder)
    return summary


def _finished(folder: Path, key: str, needs_model: bool) -> FinetuneSummary | None:
    try:
        summary = FinetuneSummary.load(folder)
    except Exception:  # missing or from another version: train anew
        return None
    has_model = not needs_model or (folder / "model").is_dir()
    return summary if summary.run_key == key and has_model else None
