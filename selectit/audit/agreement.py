"""Agreement of a scorer with the judge on pairs: pure numpy, no I/O.

For each pair the preferred response either scores higher (a win), lower (a
loss) or the same (a tie). Agreement is wins over all pairs, so a scorer cannot
look better by tying; ties are reported beside it. A pair where either score is
missing (NaN: no probability on any digit) cannot be ordered and counts as a tie.
The interval is a percentile bootstrap over pairs (selectit.evaluation.stats).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from selectit.evaluation.stats import Interval, bootstrap_ci

# How the preferred response's length compares with the other's.
LONGER_WINS = "longer_wins"  # the judge preferred the longer response
SHORTER_WINS = "shorter_wins"
SAME_LENGTH = "same_length"
RELATIONS = (LONGER_WINS, SHORTER_WINS, SAME_LENGTH)


@dataclass(frozen=True)
class Agreement:
    n: int  # pairs
    wins: int  # the preferred response scored higher
    losses: int
    ties: int
    interval: Interval | None  # agreement (wins / n) with its bootstrap interval; None for no pairs

    @property
    def agreement(self) -> float | None:
        return self.interval.estimate if self.interval else None

    @property
    def tie_share(self) -> float | None:
        return self.ties / self.n if self.n else None

    def to_dict(self) -> dict:
        interval = self.interval
        return {
            "agreement": interval.estimate if interval else None,
            "low": interval.low if interval else None,
            "high": interval.high if interval else None,
            "n": self.n,
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "tie_share": self.tie_share,
        }


def outcomes(preferred: Sequence[float] | np.ndarray, other: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per pair: 1 when the preferred response scores higher, -1 when lower, 0 for a tie (or a missing score)."""
    first = np.asarray(preferred, dtype=np.float64)
    second = np.asarray(other, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError(f"expected one score per pair on both sides, got shapes {first.shape} and {second.shape}")
    return np.nan_to_num(np.sign(first - second), nan=0.0).astype(np.int8)


def agreement(
    preferred: Sequence[float] | np.ndarray,
    other: Sequence[float] | np.ndarray,
    *,
    resamples: int,
    level: float,
    seed: int,
) -> Agreement:
    """How often the preferred response scores higher, with a percentile bootstrap interval over pairs."""
    result = outcomes(preferred, other)
    wins = result == 1
    interval = bootstrap_ci(wins, resamples=resamples, level=level, seed=seed) if len(result) else None
    return Agreement(
        n=len(result),
        wins=int(wins.sum()),
        losses=int((result == -1).sum()),
        ties=int((result == 0).sum()),
        interval=interval,
    )


def length_relations(preferred_lengths: Sequence[int], other_lengths: Sequence[int]) -> np.ndarray:
    """Per pair: whether the judge preferred the longer response, the shorter one, or they are as long."""
    first, second = np.asarray(preferred_lengths), np.asarray(other_lengths)
    return np.where(first > second, LONGER_WINS, np.where(first < second, SHORTER_WINS, SAME_LENGTH))


def agreement_by_relation(
    preferred: np.ndarray, other: np.ndarray, relations: np.ndarray, **bootstrap
) -> dict[str, Agreement]:
    """Agreement on the pairs of each length relation that has any (`bootstrap`: resamples, level, seed)."""
    return {
        relation: agreement(preferred[mask], other[mask], **bootstrap)
        for relation in RELATIONS
        if (mask := relations == relation).any()
    }
