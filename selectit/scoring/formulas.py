"""The SelectIT uncertainty math (arXiv 2402.16705, section 3): pure functions, no I/O.

Shapes follow one convention: the last axis of a probability array holds the K
digit probabilities in digit order (index 0 is the rating "1").

- token level:    S_token = S_base * (1/(K-1)) * sum_i |P'_i - P'_{S_base}|
- sentence level: S_sent  = mean_p(S_token) / (1 + alpha * std_p(S_token))   (ddof = 0)
- model level:    S_model = sum_m w_m * S_sent_m,  w = theta / sum(theta)

Two alternatives to the token level, measured by the audit (docs/results/small-raters.md;
both stayed at chance there, as the paper's score did, so the selection keeps the paper's):

- expected rating: E = sum_k k * P'_k, which reads the whole distribution where
  the paper's score reads its peak;
- calibrated: P'_k divided by the rater's distribution on content-free inputs
  and renormalised (contextual calibration), before either token score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from selectit.core.catalog import EXPECTED, PAPER, TOKEN_LEVEL_SCORES


def normalise_digit_probs(probs: np.ndarray, authors_softmax: bool = False) -> np.ndarray:
    """P'_k = P_k / sum_j P_j over the last axis.

    `authors_softmax=True` adds the extra exp-normalisation the authors'
    released scripts apply to P' (a softmax of probabilities); it flattens every
    distribution, so it is off by default and exists only to reproduce their numbers.
    Rows whose digit mass is zero come out as NaN: there is no rating to read.
    """
    p = np.asarray(probs, dtype=np.float64)
    total = p.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.where(total > 0, p / total, np.nan)
    if authors_softmax:
        shifted = np.exp(normalised - np.nanmax(normalised, axis=-1, keepdims=True))
        normalised = shifted / shifted.sum(axis=-1, keepdims=True)
    return normalised


def token_scores(probs: np.ndarray, authors_softmax: bool = False) -> np.ndarray:
    """Token-level score for each distribution over K digits (last axis).

    Ties in the argmax go to the lower rating (numpy's first maximum), which is
    the conservative choice.
    """
    p = normalise_digit_probs(probs, authors_softmax)
    k = p.shape[-1]
    if k < 2:
        raise ValueError(f"a rating scale needs K >= 2 digits, got K = {k}")
    invalid = np.isnan(p).any(axis=-1)
    safe = np.where(invalid[..., None], 0.0, p)
    base_index = safe.argmax(axis=-1)
    peak = np.take_along_axis(safe, base_index[..., None], axis=-1)
    spread = np.abs(safe - peak).sum(axis=-1) / (k - 1)
    scores = (base_index + 1) * spread
    return np.where(invalid, np.nan, scores)


def expected_ratings(probs: np.ndarray, authors_softmax: bool = False) -> np.ndarray:
    """E = sum_k k * P'_k for each distribution over K digits (last axis); NaN where no digit mass."""
    p = normalise_digit_probs(probs, authors_softmax)
    return (p * np.arange(1, p.shape[-1] + 1)).sum(axis=-1)


def token_level(probs: np.ndarray, score: str = PAPER, authors_softmax: bool = False) -> np.ndarray:
    """The token-level score `score` names, for each distribution over K digits (last axis)."""
    if score == PAPER:
        return token_scores(probs, authors_softmax)
    if score == EXPECTED:
        return expected_ratings(probs, authors_softmax)
    raise ValueError(f"token-level score must be one of {TOKEN_LEVEL_SCORES}, got {score!r}")


def calibrate(probs: np.ndarray, content_free: np.ndarray) -> np.ndarray:
    """P'' = (P' / q) / sum(P' / q): each distribution (last axis) divided by `q`, the rater's
    normalised digit distribution on content-free inputs, and renormalised.

    A rater that leans towards one digit whatever it reads puts that lean into q,
    so dividing by q leaves what the example itself moves. `q` broadcasts
    against `probs` (one q per row, or one for all); rows without digit mass stay NaN."""
    q = np.asarray(content_free, dtype=np.float64)
    if (q <= 0).any() or not np.isfinite(q).all():
        raise ValueError("content-free digit distributions must be finite and > 0 for every digit")
    return normalise_digit_probs(normalise_digit_probs(probs) / q)


def sentence_scores(token_level: np.ndarray, alpha: float) -> np.ndarray:
    """Sentence-level score over the prompt axis (the last axis) of token scores."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    s = np.asarray(token_level, dtype=np.float64)
    return s.mean(axis=-1) / (1.0 + alpha * s.std(axis=-1, ddof=0))


def model_weights(param_counts: Mapping[str, float], explicit: Mapping[str, float] | None = None) -> dict[str, float]:
    """Normalised rater weights: parameter counts by default, explicit ones if given."""
    raw = dict(explicit) if explicit else dict(param_counts)
    if explicit is not None and set(explicit) != set(param_counts):
        raise ValueError(f"weights must name exactly the raters {sorted(param_counts)}, got {sorted(explicit)}")
    if not raw:
        raise ValueError("model-level scoring needs at least one rater")
    if any(not np.isfinite(w) or w < 0 for w in raw.values()):
        raise ValueError(f"weights must be finite and >= 0, got {raw}")
    total = float(sum(raw.values()))
    if total <= 0:
        raise ValueError(f"weights must not all be zero, got {raw}")
    return {name: float(w) / total for name, w in raw.items()}


def model_scores(sentence_by_model: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted sum of each rater's sentence scores (weights already normalised)."""
    names: Sequence[str] = list(sentence_by_model)
    if set(names) != set(weights):
        raise ValueError(f"weights {sorted(weights)} do not match raters {sorted(names)}")
    stacked = np.stack([np.asarray(sentence_by_model[n], dtype=np.float64) for n in names])
    w = np.array([weights[n] for n in names])[:, None]
    return (w * stacked).sum(axis=0)
