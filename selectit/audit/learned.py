"""The selectors that need a model: IFD of the pool, and the `learned` pairwise model, fitted on
judged pairs and applied to the pool. Shared by the select stage and the audit.

The pairs' responses are rated as the audit rates them (`rate_examples` through a shard
cache: a re-run rates nothing), with the raters and settings the score stage used for the
pool, so a pair's features and an example's features are the same numbers of the same
models. IFD is the one implementation in selectit/rating/ifd.py, cached per chunk.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from selectit.audit.calibration import calibrated_probs, content_free_distributions, content_free_examples
from selectit.audit.pairs import SIDES, JudgedPair, pair_examples, read_pairs
from selectit.core.catalog import rater_name
from selectit.core.io import file_sha256
from selectit.core.records import Example, Reject
from selectit.rating.ifd import response_losses
from selectit.rating.models import load_tokenizer, resolve
from selectit.rating.rate import rate_examples
from selectit.rating.settings import RatingSettings
from selectit.scoring.features import (
    IFD,
    LENGTH_FEATURES,
    FeatureTable,
    length_columns,
    only,
    rating_features,
    with_columns,
)
from selectit.scoring.pairwise import PairData, PairwiseModel, check_pairs, fit_pairwise

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IfdSpec:
    model: str  # as score.raters
    max_tokens: int


@dataclass(frozen=True)
class LearnedSpec:
    """How the features are read: the same for fitting and applying."""

    raters: list[str]
    rating: RatingSettings
    alpha: float
    authors_softmax: bool
    length_features: bool
    ifd: IfdSpec | None  # IFD as a feature, or None


@dataclass
class IfdResult:
    scores: dict[str, float]  # example id -> IFD (NaN when unrated)
    rejects: list[Reject] = field(default_factory=list)  # the unrated examples, with why
    seconds: float = 0.0


def ifd_of(
    examples: Sequence[Example], spec: IfdSpec, rating: RatingSettings, cache_root: Path, progress: bool
) -> IfdResult:
    """IFD of every example with `spec.model`; an example too long for its context is unrated,
    listed as a reject with the reason (it keeps a NaN score and ranks last)."""
    run = response_losses(
        examples,
        spec.model,
        Path(cache_root),
        max_response_tokens=spec.max_tokens,
        device=rating.device,
        token_budget=rating.token_budget,
        trust_remote_code=rating.trust_remote_code,
        progress=progress,
    )
    unrated = run.unrated()
    rejects = [
        Reject(e.source, e.row, None, f"ifd ({rater_name(spec.model)}): {unrated[e.id]}", {"id": e.id})
        for e in examples
        if e.id in unrated
    ]
    return IfdResult(run.scores(), rejects, run.seconds)


def token_lengths(examples: Sequence[Example], spec: str, trust_remote_code: bool) -> dict:
    """The length features, counted in tokens of model `spec` (the first rater)."""
    tokenizer = load_tokenizer(resolve(spec, trust_remote_code), trust_remote_code)
    instructions = [f"{e.instruction}\n{e.input}" if e.input.strip() else e.instruction for e in examples]
    counted = tokenizer(instructions, add_special_tokens=False)["input_ids"]
    responses = tokenizer([e.output for e in examples], add_special_tokens=False)["input_ids"]
    return length_columns(
        {e.id: len(ids) for e, ids in zip(examples, counted, strict=True)},
        {e.id: len(ids) for e, ids in zip(examples, responses, strict=True)},
    )


def _lean(spec: LearnedSpec, cache_root: Path, progress: bool) -> dict[tuple[str, int], np.ndarray]:
    """Each rater's and prompt's content-free digit distribution (a few rating texts, cached)."""
    run = rate_examples(content_free_examples(), spec.raters, spec.rating, Path(cache_root) / "ratings", progress)
    return content_free_distributions(run.ratings)


def features_of(
    ratings: pa.Table,
    examples: Sequence[Example],
    spec: LearnedSpec,
    lean: dict[tuple[str, int], np.ndarray],
    ifd: dict[str, float] | None,
) -> FeatureTable:
    """Every feature of the examples rated in `ratings` (see selectit/scoring/features.py); `ifd`
    (example id -> IFD) is a feature when given."""
    table = rating_features(ratings, spec.alpha, spec.authors_softmax, calibrated_probs(ratings, lean))
    rated = set(table.ids)
    extra = token_lengths([e for e in examples if e.id in rated], spec.raters[0], spec.rating.trust_remote_code)
    if ifd is not None:
        extra = {**extra, IFD: ifd}
    table = with_columns(table, extra)
    names = [n for n in table.names if spec.length_features or n not in LENGTH_FEATURES]
    return only(table, names)


@dataclass
class PairsUsed:
    pairs: list[JudgedPair]
    unrated: list[dict]  # pair_id, reason: a response some rater could not read
    rejects: list[Reject]  # lines of the pairs file that are not usable pairs
    excluded: int  # pairs left out because their id was in `exclude_ids`


def pair_data(pairs: Sequence[JudgedPair], table: FeatureTable) -> PairData:
    return PairData(
        names=table.names,
        preferred=table.rows([p.example_id(p.preferred) for p in pairs]),
        other=table.rows([p.example_id(p.other) for p in pairs]),
        groups=[f"{p.instruction}\n{p.input}" for p in pairs],
        pair_ids=[p.pair_id for p in pairs],
        preferred_ids=[p.example_id(p.preferred) for p in pairs],
        other_ids=[p.example_id(p.other) for p in pairs],
    )


def fit_learned(
    pairs_path: str | Path,
    limit: int | None,
    spec: LearnedSpec,
    cache_root: Path,
    *,
    folds: int,
    seed: int,
    exclude_ids: Collection[str] = (),
    progress: bool = True,
) -> PairwiseModel:
    """Fit the pairwise model on the first `limit` usable pairs of `pairs_path` whose pair_id is
    not in `exclude_ids` (pairs reserved for another measurement, never fitted on).

    The number of pairs is checked against `folds` before any model runs."""
    excluded = set(exclude_ids)
    read = read_pairs(pairs_path)
    kept = [p for p in read.pairs if p.pair_id not in excluded]
    pairs = kept[:limit] if limit is not None else kept
    check_pairs(len(pairs), len({f"{p.instruction}\n{p.input}" for p in pairs}), folds, "select.learned_pairs")
    examples = pair_examples(pairs, str(read.path))
    run = rate_examples(examples, spec.raters, spec.rating, Path(cache_root) / "ratings", progress)
    unfit = {e.id for e in examples} - set(run.ratings["example_id"].to_pylist())
    rated = [p for p in pairs if not {p.example_id(s) for s in SIDES} & unfit]
    if len(rated) < len(pairs):
        log.warning("%d pair(s) left out: a rater cannot read a response", len(pairs) - len(rated))
    lean = _lean(spec, cache_root, progress)
    ifd = None
    if spec.ifd is not None:
        ifd = ifd_of(examples, spec.ifd, spec.rating, Path(cache_root) / "ifd-losses", progress).scores
    table = features_of(run.ratings, examples, spec, lean, ifd)
    check_pairs(len(rated), len({f"{p.instruction}\n{p.input}" for p in rated}), folds, "select.learned_pairs")
    model = fit_pairwise(pair_data(rated, table), folds, seed)
    model.settings = {
        "pairs_file": str(read.path),
        "pairs_sha256": file_sha256(read.path),
        "limit": limit,
        "excluded_pairs": len(read.pairs) - len(kept),
        "unrated_pairs": len(pairs) - len(rated),
        "raters": [rater_name(r) for r in spec.raters],
        "length_tokenizer": rater_name(spec.raters[0]),
        "ifd_model": rater_name(spec.ifd.model) if spec.ifd else None,
        "lean": {f"{r}\t{p}": q.tolist() for (r, p), q in lean.items()},
        "rating": dataclasses.asdict(spec.rating),
        "alpha": spec.alpha,
        "authors_softmax": spec.authors_softmax,
    }
    log.info("learned: %d pairs, %d-fold agreement %.3f", model.pairs, folds, model.cv_agreement or float("nan"))
    return model


def learned_scores(
    model: PairwiseModel,
    ratings: pa.Table,
    examples: Sequence[Example],
    spec: LearnedSpec,
    ifd: dict[str, float] | None,
) -> dict[str, float]:
    """The fitted model's score of every example rated in `ratings` (the pool)."""
    lean = {}
    for key, q in model.settings["lean"].items():
        rater, prompt = key.split("\t")
        lean[(rater, int(prompt))] = np.asarray(q)
    table = only(features_of(ratings, examples, spec, lean, ifd if spec.ifd else None), model.names)
    return dict(zip(table.ids, model.score(table.values).tolist(), strict=True))
