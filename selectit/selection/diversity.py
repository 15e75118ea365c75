"""Diversity-aware selection: which examples of a ranking fill the budget.

A ranking (ids best first, from SelectIT or another `select.method`) and the budget
(R% of the pool) go in; the kept ids come out, best first. Three modes:

- `none` (the paper): the top of the ranking.
- `repr-filter` (DEITA, arXiv 2312.15685): walk the ranking from the top and keep an
  example only if its cosine similarity to every example kept so far is below
  `max_similarity`, until the budget is filled. When the ranking runs out first the
  selection is smaller than the budget: filling it with examples the filter turned
  away would undo what it is for. The shortfall is in diversity.json and the card.
- `k-center`: greedy k-center (farthest-first traversal) over the top candidates of the
  ranking, the best `CANDIDATE_FACTOR` x budget. The score enters twice and only as a
  tie-break and a floor: the candidates are the ranking's top, the first centre is the
  best-ranked example, and of equally far candidates the better-ranked wins. A weight
  (distance x score) would mix two scales that have no common unit, and lose greedy
  k-center's guarantee (its covering radius is within 2x of the best possible).

Both are block matrix products, never loops over pairs, and both read the pool a block
at a time (selection/rows.py): memory holds what is kept and one block, not the pool.
The filter searches the kept set through LSH buckets (selection/similarity.py).
k-center over more than `KCENTER_LEAF` candidates splits them first with a random-projection tree (each split at
the median of a random direction) and runs the greedy traversal inside each leaf, with
the budget shared by leaf size: each step then costs a leaf, not the whole pool, so the
time grows linearly with the pool; on a pool of at most one leaf it is the exact greedy
traversal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from selectit.config import DIVERSITY_MODES, DIVERSITY_VARIANTS, SelectConfig
from selectit.selection.rows import ROW_BLOCK, RankedRows, SubsetRows, as_rows
from selectit.selection.semantic_duplicates import SemanticDuplicate, semantic_duplicate_rows
from selectit.selection.similarity import KeptSet, small_products
from selectit.selection.top import n_to_keep

CANDIDATE_FACTOR = 2  # k-center picks from the ranking's best 2 x budget
KCENTER_LEAF = 2048  # candidates per leaf of the random-projection tree


@dataclass(frozen=True)
class Choice:
    kept: list[str]  # best first
    left_out: list[str]  # best first (semantic duplicates among them)
    budget: int  # R% of the pool left after semantic duplicates
    duplicates: dict[str, SemanticDuplicate] = field(default_factory=dict)  # removed before choosing, by id

    @property
    def shortfall(self) -> int:
        """How many fewer than the budget were kept (the repr filter ran out of ranking)."""
        return self.budget - len(self.kept)


def repr_filter(
    vectors: RankedRows | np.ndarray, budget: int, max_similarity: float, *, exact: bool = False, seed: int = 0
) -> list[int]:
    """Rows (in ranking order: row 0 is the best) kept by DEITA's filter, at most `budget`."""
    rows = as_rows(vectors)
    kept = KeptSet(rows.dim, max_similarity, capacity=budget, pool=len(rows), exact=exact, seed=seed)
    with small_products():
        for position, vector, key in kept.walk(rows):
            if len(kept.kept) == budget:
                break
            if kept.closest(vector, key) is None:
                kept.add(position, vector, key)
    return kept.kept


def k_center(vectors: RankedRows | np.ndarray, budget: int, *, seed: int = 0, leaf: int = KCENTER_LEAF) -> list[int]:
    """Rows (ranking order) chosen by greedy k-center among the best CANDIDATE_FACTOR x budget.
    One leaf's rows are in memory at a time."""
    rows = as_rows(vectors)
    count = min(len(rows), CANDIDATE_FACTOR * budget)
    if budget >= count:
        return list(range(count))
    leaves = _projection_tree(rows, count, leaf, np.random.default_rng(seed))
    quotas = _shares(budget, [len(part) for part in leaves])
    with small_products():
        chosen = [
            int(part[i])
            for part, quota in zip(leaves, quotas, strict=True)
            for i in _farthest_first(rows.take(part), quota)
        ]
    return sorted(chosen)


def _farthest_first(vectors: np.ndarray, count: int) -> list[int]:
    """Greedy k-center on unit rows by cosine distance, from row 0; ties to the lower row."""
    if count <= 0:
        return []
    chosen = [0]
    nearest = 1.0 - vectors @ vectors[0]  # each row's distance to its nearest centre
    nearest[0] = -np.inf
    while len(chosen) < count:
        row = int(np.argmax(nearest))  # argmax takes the first of equal maxima: the better-ranked
        chosen.append(row)
        np.minimum(nearest, 1.0 - vectors @ vectors[row], out=nearest)
        nearest[chosen] = -np.inf  # a centre is never picked again, whatever rounding says
    return chosen


def _projection_tree(rows: RankedRows, count: int, leaf: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The first `count` rows split at the median of random directions until each part holds
    at most `leaf`; each part's rows in ascending order (ranking order)."""
    parts, done = [np.arange(count)], []
    while parts:
        part = parts.pop()
        if len(part) <= leaf:
            done.append(part)
            continue
        direction = rng.standard_normal(rows.dim).astype(np.float32)
        order = np.argsort(_project(rows, part, direction), kind="stable")
        half = len(part) // 2
        parts += [np.sort(part[order[:half]]), np.sort(part[order[half:]])]
    return sorted(done, key=lambda part: int(part[0]))


def _project(rows: RankedRows, part: np.ndarray, direction: np.ndarray, block: int = ROW_BLOCK) -> np.ndarray:
    """rows[part] @ direction, a block of rows at a time."""
    return np.concatenate([rows.take(part[start : start + block]) @ direction for start in range(0, len(part), block)])


def _shares(total: int, sizes: Sequence[int]) -> list[int]:
    """`total` split in proportion to `sizes` (largest remainders; ties to the earlier part)."""
    exact = [total * size / sum(sizes) for size in sizes]
    shares = [int(x) for x in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares


def choose(
    ranked: Sequence[str],
    ratio: float,
    *,
    diversity: str,
    vectors: RankedRows | np.ndarray | None,
    max_similarity: float,
    duplicate_threshold: float | None,
    seed: int,
) -> Choice:
    """The selection from `ranked` (ids best first); `vectors[i]` is the unit embedding of
    `ranked[i]` (an array, or the rows of `rows.ranked_vectors`; None when neither a
    diversity mode nor semantic duplicates is on).

    Semantic duplicates go first: they are left out of the pool, and the budget is R% of
    what remains (as it is of what validation left)."""
    if diversity not in DIVERSITY_MODES:
        raise ValueError(f"unknown diversity mode {diversity!r}")
    if vectors is None and (diversity != "none" or duplicate_threshold is not None):
        raise ValueError("a diversity mode and semantic duplicates need the examples' embeddings")
    rows = np.arange(len(ranked))
    duplicates: dict[int, tuple[int, float]] = {}
    if duplicate_threshold is not None:
        duplicates = semantic_duplicate_rows(vectors, duplicate_threshold, seed=seed)
        rows = np.asarray([r for r in rows if r not in duplicates], dtype=np.int64)
    budget = n_to_keep(len(rows), ratio)
    if diversity == "none":
        picked = list(range(budget))
    else:
        left = SubsetRows(as_rows(vectors), rows) if duplicates else vectors
        if diversity == "repr-filter":
            picked = repr_filter(left, budget, max_similarity, seed=seed)
        else:
            picked = k_center(left, budget, seed=seed)
    kept_rows = rows[picked]
    chosen = set(kept_rows.tolist())
    return Choice(
        kept=[ranked[r] for r in kept_rows],
        left_out=[ranked[r] for r in range(len(ranked)) if r not in chosen],
        budget=budget,
        duplicates={ranked[r]: SemanticDuplicate(ranked[of], cosine) for r, (of, cosine) in duplicates.items()},
    )


def choices_by_mode(cfg: SelectConfig, ranked: Sequence[str], vectors: RankedRows | None) -> dict[str, Choice]:
    """The selection of select.diversity's mode and, with embeddings, of every mode a
    diversity variant trains on (DIVERSITY_VARIANTS), each from the same ranking."""
    modes = dict.fromkeys([cfg.diversity, *(DIVERSITY_VARIANTS.values() if vectors is not None else [])])
    return {
        mode: choose(
            ranked,
            cfg.ratio,
            diversity=mode,
            vectors=vectors,
            max_similarity=cfg.max_similarity,
            duplicate_threshold=cfg.semantic_duplicates,
            seed=cfg.seed,
        )
        for mode in modes
    }
