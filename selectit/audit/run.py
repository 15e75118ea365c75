"""Rate judged pairs and measure every scorer against the judge: the audit as one call,
shared by `selectit audit` and the pipeline's audit stage.

Both responses of each pair are rated like any example, the way the score
stage rates (`rate_examples` over `rate_records`: one rater in memory at a time,
finished shards re-used), and scored with the aggregate stage's formulas; so
are a few content-free inputs, which calibrate the digit distributions. With
`ifd_raters`, the responses' losses give the IFD scorers (selectit/rating/ifd.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from selectit.audit.calibration import calibrated_probs, content_free_distributions, content_free_examples
from selectit.audit.learned import LearnedSpec, features_of, pair_data
from selectit.audit.pairs import SIDES, JudgedPair, PairsRead, pair_examples, read_pairs
from selectit.audit.report import FORMAT, AuditReport, judge_scorers
from selectit.audit.scorers import (
    COMBINED,
    LIKELIHOOD,
    MODEL,
    TOKEN_VARIANTS,
    Scorer,
    length_adjusted,
    length_scorer,
    rank_mean,
    selection_scorer_name,
    selectit_scorers,
)
from selectit.audit.validity import rating_validity
from selectit.config import AggregateConfig
from selectit.core.errors import InputError
from selectit.core.io import file_sha256, write_json, write_text
from selectit.core.records import Example, Reject, write_rejects
from selectit.rating.ifd import response_losses
from selectit.rating.rate import rate_examples
from selectit.rating.settings import RatingSettings
from selectit.scoring.pairwise import fit_pairwise
from selectit.selection.methods import LEARNED

log = logging.getLogger(__name__)

REPORT_JSON = "audit.json"
REPORT_MARKDOWN = "audit.md"
METRICS_JSON = "metrics.json"
REJECTS = "rejects.jsonl"


def audit_pairs(
    pairs_path: str | Path,
    limit: int | None,
    raters: Sequence[str],
    rating: RatingSettings,
    aggregate: AggregateConfig,
    cache_root: str | Path,
    *,
    resamples: int,
    level: float,
    seed: int,
    progress: bool,
    ifd_raters: Sequence[str],
    ifd_max_tokens: int,
    learned_folds: int = 5,
) -> AuditReport:
    """Rate the first `limit` usable pairs with `raters` and report each scorer's agreement;
    with `ifd_raters`, also the IFD of each response by each of those models; and the `learned`
    selector's pairwise model, scored out of fold (`learned_folds` folds grouped by instruction)."""
    started = time.perf_counter()
    read = _read_pairs(pairs_path, limit)
    examples = pair_examples(read.pairs, str(read.path))
    run = rate_examples(examples, raters, rating, Path(cache_root), progress)
    rated, unrated = _rated_pairs(read, examples, run.rejects)
    rated_ids = {pair.example_id(side) for pair in rated for side in SIDES}
    rated_examples = [e for e in examples if e.id in rated_ids]
    scorers, weights, lean = _rating_scorers(run.ratings, raters, rating, aggregate, cache_root, progress)
    lengths = {e.id: len(e.output) for e in examples}
    headline = selection_scorer_name(aggregate.token_score)
    selection = next(s for s in scorers if s.name == headline)
    scorers += [length_adjusted(s, lengths) for s in scorers if s.level == MODEL]
    length = length_scorer(examples)
    for spec in ifd_raters:
        scorers += _ifd_scorers(rated_examples, spec, rating, cache_root, ifd_max_tokens, selection, length, progress)
    ifd = next((s.scores for s in scorers if s.name.startswith("ifd.")), None)
    learned = LearnedSpec(list(raters), rating, aggregate.alpha, aggregate.authors_softmax, True, None)
    scorers += _learned_scorers(rated, rated_examples, run.ratings, learned, lean, ifd, learned_folds, seed)
    scorers.append(length)
    results, relations = judge_scorers(rated, scorers, resamples=resamples, level=level, seed=seed)
    return AuditReport(
        pairs_file=str(read.path),
        pairs_sha256=file_sha256(read.path),
        lines_read=read.lines_read,
        rejects=read.rejects,
        unrated=unrated,
        length_relations=relations,
        results=results,
        validity=rating_validity(run.ratings),
        weights=weights,
        calibration={f"{rater}.{prompt}": q.tolist() for (rater, prompt), q in lean.items()},
        resamples=resamples,
        level=level,
        seed=seed,
        seconds=round(time.perf_counter() - started, 1),
        generators=dict(Counter(pair.generators for pair in rated if pair.generators)),
        headline=headline,
    )


def _read_pairs(pairs_path: str | Path, limit: int | None) -> PairsRead:
    """The first `limit` usable pairs; the lines that are not usable pairs are warned about."""
    read = read_pairs(pairs_path, limit)
    if read.rejects:
        first = read.rejects[0]
        log.warning(
            "%s: %d of %d line(s) are not usable pairs and are left out (first: line %d: %s)",
            read.path,
            len(read.rejects),
            read.lines_read,
            first.line,
            first.reason,
        )
    return read


def _rated_pairs(
    read: PairsRead, examples: Sequence[Example], rejects: Sequence[Reject]
) -> tuple[list[JudgedPair], list[dict]]:
    """The pairs every rater could read both responses of, and the others with the reason.

    A response that some rater cannot read (too long for its context) has no
    model-level score, so its pair cannot be judged: reported, not dropped silently."""
    id_at = {(e.source, e.row): e.id for e in examples}
    unfit = {id_at[(r.source, r.row)]: r.reason for r in rejects}
    rated, unrated = [], []
    for pair in read.pairs:
        reasons = [unfit[eid] for side in SIDES if (eid := pair.example_id(side)) in unfit]
        if reasons:
            unrated.append({"pair_id": pair.pair_id, "line": pair.line, "reason": reasons[0]})
        else:
            rated.append(pair)
    if not rated:
        raise InputError(
            f"{read.path}: none of the {len(read.pairs)} pairs could be rated; line {unrated[0]['line']}: "
            f"{unrated[0]['reason']}"
        )
    if unrated:
        log.warning("%d pair(s) left out: a rater cannot read a response (%s)", len(unrated), unrated[0]["reason"])
    return rated, unrated


def _rating_scorers(
    ratings, raters: Sequence[str], rating: RatingSettings, aggregate: AggregateConfig, cache_root, progress: bool
):
    """Every level under every token-level variant (paper, expected, calibrated, both), the
    rater weights, and each rater's and prompt's content-free distribution (its lean)."""
    # A few rating texts per rater and prompt, cached with the pairs' ratings.
    content_free = rate_examples(content_free_examples(), raters, rating, Path(cache_root), progress)
    lean = content_free_distributions(content_free.ratings)
    calibrated = calibrated_probs(ratings, lean)
    scorers: list[Scorer] = []
    weights: dict[str, float] = {}
    for variant in TOKEN_VARIANTS:
        found, normalised = selectit_scorers(
            ratings, aggregate.alpha, aggregate.authors_softmax, aggregate.weights, variant, calibrated
        )
        scorers += found
        weights = weights or normalised
    return scorers, weights, lean


def _ifd_scorers(
    examples, spec: str, rating: RatingSettings, cache_root, max_tokens: int, model: Scorer, length: Scorer, progress
):
    """IFD, its inverse, and each combined by mean rank with SelectIT's model level and with length."""
    run = response_losses(
        examples,
        spec,
        Path(cache_root) / "ifd-losses",
        max_response_tokens=max_tokens,
        device=rating.device,
        token_budget=rating.token_budget,
        trust_remote_code=rating.trust_remote_code,
        progress=progress,
    )
    ifd = run.scores()
    direct = Scorer(
        f"ifd.{run.rater}",
        LIKELIHOOD,
        f"IFD of {run.rater} (loss given the instruction / loss alone; higher: harder)",
        ifd,
        rater=run.rater,
        variant="ifd",
    )
    inverse = Scorer(
        f"ifd_inverse.{run.rater}",
        LIKELIHOOD,
        f"inverse IFD of {run.rater} (lower IFD wins: the instruction helps more)",
        {i: -v for i, v in ifd.items()},
        rater=run.rater,
        variant="ifd",
    )
    return [direct, inverse, *(rank_mean(other, ifd) for other in (model, length) for ifd in (direct, inverse))]


def _learned_scorers(
    pairs: Sequence[JudgedPair],
    examples: Sequence[Example],
    ratings,
    spec: LearnedSpec,
    lean,
    ifd: dict[str, float] | None,
    folds: int,
    seed: int,
) -> list[Scorer]:
    """The `learned` selector's agreement, never fitted and reported on the same pairs: each
    response scored by the model of the fold that held its pair out; with every feature, and
    without the length features (how much of it is length?). Too few pairs for the folds, or
    a constant feature, leave them out of the table with a warning: the audit still reports."""
    found = []
    for length_features in (True, False):
        features = dataclasses.replace(spec, length_features=length_features)
        # With audit.ifd_raters, the first one's IFD is a feature too.
        table = features_of(ratings, examples, features, lean, ifd)
        try:
            model = fit_pairwise(pair_data(pairs, table), folds, seed, key="audit (learned)")
        except InputError as exc:
            log.warning("learned selector left out of the audit: %s", exc)
            return []
        name = LEARNED if length_features else f"{LEARNED}.no_length"
        what = "every feature" if length_features else "without the length features"
        found.append(
            Scorer(
                name,
                COMBINED,
                f"learned pairwise model, {what} ({folds}-fold, out-of-fold scores; C={model.c:.3g})",
                model.cv_scores,
                variant=LEARNED,
            )
        )
    return found


def write_audit(report: AuditReport, folder: str | Path) -> None:
    """audit.json, audit.md, metrics.json (DVC metrics) and rejects.jsonl (the unusable lines)."""
    folder = Path(folder)
    write_json(folder / REPORT_JSON, report.to_json())
    write_text(folder / REPORT_MARKDOWN, report.to_markdown())
    write_json(folder / METRICS_JSON, report.dvc_metrics())
    write_rejects(report.rejects, folder / REJECTS)


def write_switched_off(folder: str | Path) -> None:
    """The outputs of an audit that audit.enabled switched off, so that `dvc repro` finds them
    and no earlier report is taken for this run's."""
    folder = Path(folder)
    write_json(folder / REPORT_JSON, {"format": FORMAT, "enabled": False})
    write_text(folder / REPORT_MARKDOWN, "# Audit\n\nSwitched off (`audit.enabled: false` in params.yaml).\n")
    write_json(folder / METRICS_JSON, {})
    write_rejects([], folder / REJECTS)
