"""What the finetune and evaluate stages write when finetune.enabled is false (selection
only), so that `dvc repro` runs through to the report: a note in each output folder, and
no earlier result left there to be taken for this run's. (The compare stage's is
selectit/evaluation/comparison.py: write_switched_off.)"""

from __future__ import annotations

from pathlib import Path

from selectit.core.io import write_text
from selectit.core.layout import Layout
from selectit.core.stages import SELECTION_ONLY_NOTE, Stage, stage_id
from selectit.summaries import EvaluateSummary, FinetuneSummary

NOTE_FILE = "SWITCHED_OFF.md"


def write_switched_off_variant(layout: Layout, stage: Stage, variant: str) -> Path:
    """Write finetune@`variant`'s or evaluate@`variant`'s switched-off outputs; returns their folder."""
    if stage == Stage.FINETUNE:
        folder, summary = layout.finetuned(variant), FinetuneSummary
        # DVC keeps the checkpoint folder between runs (a persisted output): it must exist.
        layout.finetune_checkpoints(variant).mkdir(parents=True, exist_ok=True)
    else:
        folder, summary = layout.evaluation(variant), EvaluateSummary
    summary.discard(folder)
    write_text(folder / NOTE_FILE, f"# {stage_id(stage, variant)}\n\n{SELECTION_ONLY_NOTE}")
    return folder
