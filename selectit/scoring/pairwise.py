"""A pairwise preference model over per-example features: pure, no model, no I/O.

Bradley-Terry with a linear score: P(a preferred over b) = sigmoid(w . (z_a - z_b)),
where z is an example's standardised feature vector. That is a logistic
regression on feature differences without an intercept (swapping a and b must
flip the prediction), which scikit-learn fits; the L2 strength is chosen by
cross-validation (`LogisticRegressionCV`). The fitted score of an example is
w . z: higher is better, and it is what the `learned` selector ranks by.

Folds are grouped by instruction: judged pairs often share an instruction and
even a response (two models answered against the same reference), and a
response seen in training must not be scored as held out. The agreement this
module reports is of out-of-fold scores only: no pair is scored by a model that
was fitted on it.

Saved as JSON (names, means, scales, coefficients): no pickle, readable, and the
coefficients say which feature moves the score (docs/guides/selectors.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import GroupKFold

from selectit.core.errors import InputError
from selectit.core.io import write_json

FORMAT = "selectit.pairwise/1"
C_GRID = 12  # regularisation strengths tried, log-spaced from 1e-4 to 1e4 (scikit-learn's default range)


@dataclass(frozen=True)
class PairData:
    """Judged pairs as feature rows: `preferred[i]` and `other[i]` are the two responses of pair i."""

    names: list[str]  # feature names, the columns
    preferred: np.ndarray  # pairs x features
    other: np.ndarray  # pairs x features
    groups: list[str]  # per pair: what must stay in one fold (its instruction)
    pair_ids: list[str]
    preferred_ids: list[str]  # example ids of the responses, for the out-of-fold scores
    other_ids: list[str]


@dataclass
class PairwiseModel:
    names: list[str]
    means: list[float]  # of each feature over the responses it was fitted on
    scales: list[float]  # their standard deviations (population)
    coefficients: list[float]  # per standardised feature
    c: float  # inverse L2 strength chosen by cross-validation
    folds: int
    pairs: int  # pairs it was fitted on
    cv_outcomes: list[int] = field(default_factory=list)  # per pair: 1 out-of-fold win, -1 loss, 0 tie
    cv_pair_ids: list[str] = field(default_factory=list)
    cv_scores: dict[str, float] = field(default_factory=dict)  # example id -> its out-of-fold score
    settings: dict = field(default_factory=dict)  # what it was fitted from, for the reader
    format: str = FORMAT

    @property
    def cv_agreement(self) -> float | None:
        outcomes = np.asarray(self.cv_outcomes)
        return float((outcomes == 1).mean()) if len(outcomes) else None

    def standardise(self, features: np.ndarray) -> np.ndarray:
        """z = (x - mean) / scale; a missing value (NaN) is the mean, so it moves no score."""
        z = (np.asarray(features, dtype=np.float64) - np.asarray(self.means)) / np.asarray(self.scales)
        return np.nan_to_num(z, nan=0.0)

    def score(self, features: np.ndarray) -> np.ndarray:
        """The learned score of each row of `features` (columns as `names`)."""
        return self.standardise(features) @ np.asarray(self.coefficients)

    def save(self, path: str | Path) -> None:
        write_json(Path(path), asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> PairwiseModel:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f"{path}: not a {FORMAT} model (written by another version?); run the select stage again")
        return cls(**data)


def check_pairs(n_pairs: int, n_groups: int, folds: int, key: str) -> None:
    """Cross-validation needs at least as many pairs, and instructions, as folds."""
    if n_pairs < folds or n_groups < folds:
        raise InputError(
            f"{key}: {n_pairs} usable pair(s) with {n_groups} distinct instruction(s), fewer than the "
            f"{folds} cross-validation folds (select.learned_folds); use more pairs or fewer folds"
        )


def _check_features(names: Sequence[str], responses: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Means and scales of the fitting responses; a constant feature cannot be standardised."""
    means = np.nanmean(responses, axis=0)
    scales = np.nanstd(responses, axis=0)
    # Rounding leaves a constant column a spread of about 1e-16 of its size: constant all the same.
    tolerance = 1e-9 * np.maximum(1.0, np.abs(np.nan_to_num(means)))
    constant = [n for n, s, t in zip(names, scales, tolerance, strict=True) if not s > t]
    if constant:
        raise InputError(
            f"{key}: feature(s) {constant} are constant (or missing) over the {len(responses)} fitted responses: "
            "they cannot be standardised or tell responses apart; use more or other pairs, or switch the feature off"
        )
    return means, scales


def _design(data: PairData, means: np.ndarray, scales: np.ndarray, flips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardised differences, preferred minus other, with half the pairs flipped (label 0),
    so both classes are there without an intercept."""
    z_pref = np.nan_to_num((data.preferred - means) / scales, nan=0.0)
    z_other = np.nan_to_num((data.other - means) / scales, nan=0.0)
    diff = z_pref - z_other
    x = np.where(flips[:, None], -diff, diff)
    return x, (~flips).astype(int)


def _fit_one(
    x: np.ndarray, y: np.ndarray, groups: Sequence[str], folds: int, seed: int, key: str
) -> LogisticRegressionCV:
    inner = min(folds, len(set(groups)))
    splits = list(GroupKFold(n_splits=inner).split(x, y, groups))
    # Half the pairs are flipped, so both labels are there; a tiny fold can still miss one.
    # (scikit-learn copes with an inner split of one label: the labels are those of `y`.)
    if len(set(y)) < 2:
        raise InputError(
            f"{key}: {len(y)} pairs are too few to fit within {folds} cross-validation folds "
            "(select.learned_folds); use more pairs or fewer folds"
        )
    # L2 only; the strength that predicts held-out pairs best by log loss (smoother than accuracy on few pairs).
    model = LogisticRegressionCV(
        Cs=C_GRID,
        cv=splits,
        fit_intercept=False,
        l1_ratios=(0.0,),
        scoring="neg_log_loss",
        max_iter=2000,
        random_state=seed,
        use_legacy_attributes=False,
    )
    return model.fit(x, y)


def fit_pairwise(data: PairData, folds: int, seed: int, *, key: str = "select.learned_pairs") -> PairwiseModel:
    """Fit on every pair, and score each pair out of fold (`folds` folds grouped by instruction,
    each fitted with its own cross-validated regularisation) for the agreement to report.

    `key` names the setting a bad input is reported against."""
    n = len(data.pair_ids)
    check_pairs(n, len(set(data.groups)), folds, key)
    responses = np.vstack([data.preferred, data.other])
    means, scales = _check_features(data.names, responses, key)
    flips = np.random.default_rng(seed).permutation(n) % 2 == 1  # balanced, seeded
    x, y = _design(data, means, scales, flips)

    outcomes = np.zeros(n, dtype=int)
    groups = np.asarray(data.groups, dtype=object)
    z_pref = np.nan_to_num((data.preferred - means) / scales, nan=0.0)
    z_other = np.nan_to_num((data.other - means) / scales, nan=0.0)
    cv_scores: dict[str, float] = {}
    # Means and scales come from all pairs (no labels in them); the weights of each fold never see its pairs.
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        w = _fit_one(x[train], y[train], groups[train], folds, seed, key).coef_[0]
        preferred, other = z_pref[test] @ w, z_other[test] @ w
        outcomes[test] = np.sign(preferred - other).astype(int)
        for i, a, b in zip(test, preferred, other, strict=True):
            cv_scores[data.preferred_ids[i]], cv_scores[data.other_ids[i]] = float(a), float(b)
    final = _fit_one(x, y, groups, folds, seed, key)
    return PairwiseModel(
        names=list(data.names),
        means=means.tolist(),
        scales=scales.tolist(),
        coefficients=final.coef_[0].tolist(),
        c=float(final.C_),
        folds=folds,
        pairs=n,
        cv_outcomes=outcomes.tolist(),
        cv_pair_ids=list(data.pair_ids),
        cv_scores=cv_scores,
    )
