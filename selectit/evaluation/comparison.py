"""The comparison of evaluated variants, written where it is asked for: what the compare
stage and `selectit compare` both call (no model is loaded)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from selectit.config import EvaluateConfig
from selectit.core.io import write_json, write_text
from selectit.evaluation.compare import Comparison, compare_variants
from selectit.evaluation.metrics import ordered_specs, read_questions


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
    write_text(out / "comparison.md", comparison.to_markdown())
    write_json(out / "comparison.json", comparison.to_json())
    write_json(out / "metrics.json", comparison.dvc_metrics())
    return comparison
