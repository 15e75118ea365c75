"""Per-response scores at every level SelectIT has, from one ratings table: pure, no I/O.

Each scorer is a score per example id; the audit asks of each whether it ranks
the judge's preferred response higher.

- `model`:                 the model-level score, via `aggregate` (what `select` ranks by under
                           aggregate.token_score: paper; under `expected`, `expected.model` is)
- `sentence.<rater>`:      one rater's sentence-level score: SelectIT with that rater alone
- `prompt.<p>`:            the raters' token scores under prompt p alone, weighted as at model
                           level (one prompt has no spread, so this is SelectIT with that prompt alone)
- `token.<rater>.<p>`:     one rater's token-level score under one prompt
- `length`:                the response's length in characters: the baseline "longer wins"

The same levels again under another token-level score, prefixed by its name
(`expected.model`, `calibrated.sentence.<rater>`, ...):

- `expected.*`:            the expected rating sum_k k * P'_k instead of the paper's token score
- `calibrated.*`:          the paper's token score of the calibrated distribution (calibration.py)
- `calibrated_expected.*`: the expected rating of the calibrated distribution

and, as options that are labelled as such:

- `length_adjusted.<s>`:   scorer s minus what log response length predicts of it (least squares
                           over the audited responses): the part of the score length does not explain
- `ifd.<rater>`, `ifd_inverse.<rater>`: instruction-following difficulty (selectit/rating/ifd.py)
- `rank_mean.<a>.with.<b>`: the mean of two scorers' ranks over the audited responses
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from selectit.core.records import Example
from selectit.scoring import formulas
from selectit.scoring.tables import SENTENCE_PREFIX, aggregate_token_scores, check_ratings, probs_matrix

MODEL, SENTENCE, PROMPT, TOKEN, BASELINE = "model", "sentence", "prompt", "token", "baseline"
LIKELIHOOD, COMBINED = "likelihood", "combined"  # levels of the IFD scorers and of rank means
LENGTH = "length"

# Token-level variants: name -> (token-level score, calibrated?). `paper` keeps the unprefixed names.
PAPER, EXPECTED, CALIBRATED, CALIBRATED_EXPECTED = "paper", "expected", "calibrated", "calibrated_expected"
TOKEN_VARIANTS = {
    PAPER: (formulas.PAPER, False),
    EXPECTED: (formulas.EXPECTED, False),
    CALIBRATED: (formulas.PAPER, True),
    CALIBRATED_EXPECTED: (formulas.EXPECTED, True),
}
VARIANT_LABELS = {
    PAPER: "",
    EXPECTED: "expected rating: ",
    CALIBRATED: "calibrated: ",
    CALIBRATED_EXPECTED: "calibrated expected rating: ",
}
LENGTH_ADJUSTED = "length_adjusted"


@dataclass(frozen=True)
class Scorer:
    name: str  # as in the report and the metric names
    level: str  # model | sentence | prompt | token | baseline
    description: str
    scores: dict[str, float]  # example id -> score
    rater: str | None = None
    prompt: int | None = None
    variant: str = PAPER  # which token-level score, or length_adjusted, ifd, rank_mean


def selection_scorer_name(token_score: str) -> str:
    """The audit's name for the model level that the aggregate stage ranks by under
    aggregate.token_score `token_score` (uncalibrated: the stage does not calibrate)."""
    (variant,) = [v for v, (score, calibrated) in TOKEN_VARIANTS.items() if score == token_score and not calibrated]
    return MODEL if variant == PAPER else f"{variant}.{MODEL}"


def selectit_scorers(
    ratings: pa.Table,
    alpha: float,
    authors_softmax: bool,
    weights: Mapping[str, float] | None,
    variant: str = PAPER,
    calibrated: np.ndarray | None = None,
) -> tuple[list[Scorer], dict[str, float]]:
    """The scorers of every level from the ratings, and the normalised rater weights.

    The model and sentence levels are computed as the aggregate stage computes
    them; token scores are recomputed from the stored probabilities, so
    `authors_softmax` applies to them too. `variant` names the token-level score
    (TOKEN_VARIANTS); a calibrated one reads `calibrated`, the calibrated digit
    distribution of each row of `ratings`."""
    score, needs_calibration = TOKEN_VARIANTS[variant]
    check_ratings(ratings)
    if needs_calibration and calibrated is None:
        raise ValueError(f"scorer variant {variant!r} needs the calibrated distributions")
    probs = calibrated if needs_calibration else probs_matrix(ratings)
    token = formulas.token_level(probs, score, authors_softmax)
    table, normalised = aggregate_token_scores(ratings, token, alpha, weights)
    prefix = "" if variant == PAPER else f"{variant}."
    label = VARIANT_LABELS[variant]

    def scorer(name: str, level: str, description: str, scores: dict[str, float], **where) -> Scorer:
        return Scorer(prefix + name, level, label + description, scores, variant=variant, **where)

    ids = table["example_id"].to_pylist()
    raters = [name[len(SENTENCE_PREFIX) :] for name in table.column_names if name.startswith(SENTENCE_PREFIX)]
    description = "SelectIT model level, the paper's" if variant == PAPER else "model level"
    scorers = [scorer(MODEL, MODEL, description, _by_id(ids, table["model_score"]))]
    for rater in raters:
        scores = _by_id(ids, table[SENTENCE_PREFIX + rater])
        scorers.append(scorer(f"{SENTENCE}.{rater}", SENTENCE, f"sentence level of {rater}", scores, rater=rater))

    example_ids = np.asarray(ratings["example_id"].to_pylist(), dtype=object)
    models = np.asarray(ratings["model"].to_pylist(), dtype=object)
    prompts = ratings["prompt_id"].to_numpy()
    per_cell = {
        (rater, int(prompt)): dict(zip(example_ids[mask], token[mask].tolist(), strict=True))
        for rater in raters
        for prompt in np.unique(prompts)
        if (mask := (models == rater) & (prompts == prompt)).any()
    }
    for prompt in sorted({p for _, p in per_cell}):
        scores = {eid: sum(normalised[r] * per_cell[(r, prompt)][eid] for r in raters) for eid in ids}
        scorers.append(
            scorer(f"{PROMPT}.{prompt}", PROMPT, f"prompt {prompt} alone, raters weighted", scores, prompt=prompt)
        )
    for (rater, prompt), scores in per_cell.items():
        scorers.append(
            scorer(
                f"{TOKEN}.{rater}.{prompt}",
                TOKEN,
                f"token level of {rater}, prompt {prompt}",
                scores,
                rater=rater,
                prompt=prompt,
            )
        )
    return scorers, normalised


def length_adjusted(scorer: Scorer, lengths: Mapping[str, int]) -> Scorer:
    """The part of a score that response length does not explain: the residual of a
    least-squares fit of the score on log(1 + characters) over the responses it scores.

    An option, reported under its own name: it removes whatever the score shares
    with length, the judge's real preference for fuller answers included."""
    ids = list(scorer.scores)
    y = np.array([scorer.scores[i] for i in ids], dtype=np.float64)
    x = np.log1p(np.array([lengths[i] for i in ids], dtype=np.float64))
    known = np.isfinite(y)
    residual = np.full_like(y, np.nan)
    if known.sum() >= 2 and np.ptp(x[known]) > 0:
        slope, intercept = np.polyfit(x[known], y[known], 1)
        residual[known] = y[known] - (slope * x[known] + intercept)
    else:  # nothing to fit: length explains nothing it could be told apart from
        residual[known] = y[known] - y[known].mean()
    return Scorer(
        f"{LENGTH_ADJUSTED}.{scorer.name}",
        scorer.level,
        f"length-adjusted (option): {scorer.description} minus its fit on log length",
        dict(zip(ids, residual.tolist(), strict=True)),
        rater=scorer.rater,
        prompt=scorer.prompt,
        variant=LENGTH_ADJUSTED,
    )


def rank_mean(first: Scorer, second: Scorer) -> Scorer:
    """The mean of two scorers' ranks (as shares of the responses, ties sharing their mean
    rank): a combination that needs no common scale. A response either scorer lacks gets NaN."""
    ids = [i for i in first.scores if i in second.scores]
    ranks = [_ranks(np.array([s.scores[i] for i in ids], dtype=np.float64)) for s in (first, second)]
    mean = (ranks[0] + ranks[1]) / 2
    return Scorer(
        # "+" would read better, but MLflow metric names allow only letters, digits and _-. :/
        f"rank_mean.{first.name}.with.{second.name}",
        COMBINED,
        f"mean rank of `{first.name}` and `{second.name}`",
        dict(zip(ids, mean.tolist(), strict=True)),
        variant="rank_mean",
    )


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks in [0, 1] (0 lowest), ties at their mean rank, NaN kept as NaN."""
    out = np.full(len(values), np.nan)
    known = np.flatnonzero(np.isfinite(values))
    if len(known) == 0:
        return out
    order = known[np.argsort(values[known], kind="stable")]
    sorted_values = values[order]
    rank = np.empty(len(order))
    start = 0
    while start < len(order):  # runs of equal values share their mean position
        end = start
        while end + 1 < len(order) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        rank[start : end + 1] = (start + end) / 2
        start = end + 1
    out[order] = rank / max(len(order) - 1, 1)
    return out


def length_scorer(examples: Sequence[Example]) -> Scorer:
    """Response length in characters: a scorer that sees nothing but length."""
    return Scorer(LENGTH, BASELINE, "response length (longer wins)", {e.id: float(len(e.output)) for e in examples})


def _by_id(ids: list[str], column: pa.ChunkedArray) -> dict[str, float]:
    return dict(zip(ids, column.to_numpy().tolist(), strict=True))
