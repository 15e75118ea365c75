"""The pipeline's stages by name, and how one item of a per-item stage is named.

The names are dvc.yaml's stage names, the MLflow stage-run names and the
`selectit.stage` tag; selectit/stages.py says what each stage reads, writes and
depends on.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    INGEST = "ingest"
    VALIDATE = "validate"
    SCORE = "score"  # one per rater (score.raters)
    AGGREGATE = "aggregate"
    SELECT = "select"
    AUDIT = "audit"
    FINETUNE = "finetune"  # one per variant (finetune.variants)
    EVALUATE = "evaluate"  # one per variant (finetune.variants)
    COMPARE = "compare"
    REPORT = "report"


def stage_id(stage: Stage, item: str | None = None) -> str:
    """The name of one run of a stage: `score@<rater>`, `finetune@<variant>`, as DVC
    names the stages its `foreach` expands; a stage that runs once is its own name."""
    return str(stage) if item is None else f"{stage}@{item}"


# What the finetune, evaluate and compare stages write in place of their outputs when
# finetune.enabled is false, so that `dvc repro` runs through to the report.
SELECTION_ONLY_NOTE = (
    "Switched off (`finetune.enabled: false` in params.yaml): nothing is fine-tuned, evaluated or compared.\n"
)
