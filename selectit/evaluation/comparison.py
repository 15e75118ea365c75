"""The comparison of evaluated variants, written where it is asked for: what the compare
stage and `selectit compare` both call (no model is loaded)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from selectit.config import EvaluateConfig
from selectit.core.io import write_json, write_text
from selectit.core.stages import SELECTION_ONLY_NOTE
from selectit.evaluation.compare import FORMAT, Comparison, compare_variants
from selectit.evaluation.metrics import ordered_specs, read_questions

# The compare stage's files (its DVC outputs and metrics, selectit/stages.py).
MARKDOWN, JSON_FILE, METRICS = "comparison.md", "comparison.json", "metrics.json"


def compare_evaluations(evaluated: Mapping[str, Path], cfg: EvaluateConfig, out: Path) -> Comparison:
    """Compare the evaluations in `evaluated` (variant -> its evaluate output folder) against
    cfg.reference; write comparison.md, comparison.json and metrics.json (DVC metrics) to `out`."""
    results = {variant: read_questions(Path(folder)) for variant, folder in evaluated.items()}
    comparison = compare_variants(
        results,
        ordered_specs(name for questions in results.values() for name in questions),
        reference=cfg.reference,
        resamples=cfg.bootstrap_resamples,
        level=cfg.confidence,
        seed=cfg.seed,
    )
    out = Path(out)
    write_text(out / MARKDOWN, comparison.to_markdown())
    write_json(out / JSON_FILE, comparison.to_json())
    write_json(out / METRICS, comparison.dvc_metrics())
    return comparison


def write_switched_off(out: Path) -> None:
    """The compare stage's outputs when finetune.enabled is false, so that `dvc repro` runs
    through to the report and no earlier comparison is taken for this run's."""
    out = Path(out)
    write_text(out / MARKDOWN, f"# Comparison\n\n{SELECTION_ONLY_NOTE}")
    write_json(out / JSON_FILE, {"format": FORMAT, "enabled": False})
    write_json(out / METRICS, {})


def load_comparison(path: Path) -> Comparison | None:
    """comparison.json, or None where the compare stage has not run or fine-tuning was switched off."""
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and data.get("enabled") is False:
        return None
    return Comparison.parse(data, path)
