"""Keep the top R% of examples by model-level score."""

from __future__ import annotations

import math

import pyarrow as pa


def n_to_keep(n_examples: int, ratio: float) -> int:
    """round(ratio * n), at least one when there is anything to keep."""
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    return min(n_examples, max(1, math.floor(ratio * n_examples + 0.5))) if n_examples else 0


def select_top(scores: pa.Table, ratio: float) -> tuple[list[str], list[str]]:
    """(kept ids, left-out ids), both best first. `scores` is ranked by `aggregate`."""
    ranked = scores.sort_by("rank")["example_id"].to_pylist()
    keep = n_to_keep(len(ranked), ratio)
    return ranked[:keep], ranked[keep:]
