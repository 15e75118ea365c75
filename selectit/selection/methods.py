"""The selectors' rankings: every method orders the scored examples best first, and the
select stage keeps the top R% of that order (docs/guides/selectors.md). Pure, no I/O.

- `selectit`: the aggregate stage's ranking by model-level score (the paper's);
- `length`:   the longest responses first (characters, as the `longest` baseline always
              measured; "Long Is More for Alignment", ICML 2024);
- `ifd`:      Superfiltering (ACL 2024): the highest instruction-following difficulty
              among IFD < 1 first; IFD >= 1 (the instruction does not help) after them,
              nearest 1 first; examples without an IFD last;
- `learned`:  the pairwise model's score (selectit/scoring/pairwise.py), highest first.

Every ranking breaks ties by example id, so it never depends on row order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from selectit.core.records import Example

SELECTIT, LENGTH, IFD, LEARNED = "selectit", "length", "ifd", "learned"
MODEL_METHODS = (IFD, LEARNED)  # the ones that need a model run by the select stage


def rank_by_score(scores: Mapping[str, float]) -> list[str]:
    """Ids by score, highest first; a missing score (NaN) last; ties by id."""
    return sorted(scores, key=lambda e: (math.isnan(scores[e]), -_finite(scores[e]), e))


def _finite(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def length_scores(examples: Sequence[Example]) -> dict[str, float]:
    """Response length in characters."""
    return {e.id: float(len(e.output)) for e in examples}


def ifd_ranking(ifd: Mapping[str, float]) -> list[str]:
    """Superfiltering's order: IFD < 1 by IFD, highest first; then IFD >= 1, lowest first; then no IFD."""

    def key(e: str) -> tuple:
        value = ifd[e]
        if math.isnan(value):
            return (2, 0.0, e)
        return (0, -value, e) if value < 1 else (1, value, e)

    return sorted(ifd, key=key)


def method_ranking(
    method: str,
    *,
    selectit_ranked: Sequence[str],
    pool: Sequence[Example] = (),
    scores: Mapping[str, float] | None = None,
) -> list[str]:
    """The example ids of `selectit_ranked` (the aggregate stage's ranking, best first) in
    `method`'s order. `length` reads the examples of `pool`; `ifd` and `learned` their
    `scores` (example id -> IFD or learned score), which must cover every ranked id."""
    ranked = list(selectit_ranked)
    if method == SELECTIT:
        return ranked
    if method == LENGTH:
        by_id = {e.id: e for e in pool}
        missing = [e for e in ranked if e not in by_id]
        if missing:
            raise ValueError(f"{len(missing)} ranked example(s) (first: {missing[0]}) are not in the pool")
        return rank_by_score(length_scores([by_id[e] for e in ranked]))
    if method in MODEL_METHODS:
        if scores is None:
            raise ValueError(f"method {method!r} needs its scores")
        known = {e: float(scores.get(e, math.nan)) for e in ranked}
        return ifd_ranking(known) if method == IFD else rank_by_score(known)
    raise ValueError(f"unknown selection method {method!r}")
