"""Bootstrap confidence intervals over questions: pure numpy, no I/O.

Both intervals are percentile bootstraps of a mean over questions. They are
deterministic under `seed`: the resample index matrix comes from
`numpy.random.default_rng(seed)`, drawn in fixed-size blocks so memory stays
bounded however many questions there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Upper bound on the entries of one block of the resample index matrix
# (about 32 MB of indices plus as many gathered floats). The block shape
# depends only on the number of questions, so results do not depend on the
# machine, only on (scores, resamples, seed).
_BLOCK_ENTRIES = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval [low, high]."""

    estimate: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


def bootstrap_ci(
    scores: Sequence[float] | np.ndarray,
    *,
    resamples: int,
    level: float,
    seed: int,
) -> Interval:
    """Mean of `scores` with a percentile bootstrap interval (questions resampled with replacement)."""
    values = _as_scores(scores, "scores")
    return _percentile_interval(values, resamples=resamples, level=level, seed=seed)


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    resamples: int,
    level: float,
    seed: int,
) -> Interval:
    """Mean of (a - b) over the same questions, with a paired percentile bootstrap interval.

    `a[i]` and `b[i]` must be the scores of the same question i.
    """
    first = _as_scores(a, "a")
    second = _as_scores(b, "b")
    if len(first) != len(second):
        raise ValueError(
            f"paired bootstrap needs one score per question on both sides: len(a) = {len(first)}, "
            f"len(b) = {len(second)}"
        )
    # Resampling question indices jointly for a and b and taking the mean of
    # a[idx] - b[idx] is the same as resampling the per-question differences:
    # the pairing is kept, which is what makes the interval narrow when both
    # variants find the same questions hard.
    return _percentile_interval(first - second, resamples=resamples, level=level, seed=seed)


def _as_scores(scores: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name}: expected a flat list of per-question scores, got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"{name}: no scores; a mean over zero questions has no interval")
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise ValueError(f"{name}: {bad} of {values.size} scores are NaN or infinite")
    return values


def _percentile_interval(values: np.ndarray, *, resamples: int, level: float, seed: int) -> Interval:
    if not isinstance(resamples, int | np.integer) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level!r}")
    estimate = float(values.mean())
    if values.size == 1:
        # Every resample is the one question: the interval has zero width. Said
        # explicitly rather than left to quantile arithmetic.
        return Interval(estimate, estimate, estimate)
    means = _resample_means(values, resamples, seed)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(estimate, float(low), float(high))


def _resample_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The mean of each of `resamples` bootstrap resamples of `values`."""
    n = values.size
    rng = np.random.default_rng(seed)
    block_rows = max(1, _BLOCK_ENTRIES // n)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, block_rows):
        rows = min(block_rows, resamples - start)
        index = rng.integers(0, n, size=(rows, n))
        means[start : start + rows] = values[index].mean(axis=1)
    return means
