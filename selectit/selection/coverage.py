"""How much of the pool a selection covers, and what it holds: the numbers of diversity.json.

Per selection (the stage's own, each diversity mode, the fine-tuning baselines):
- coverage: the mean cosine distance from each pool example to its nearest selected one
  (lower: the selection leaves less of the pool far from anything it holds), over a
  seeded sample of the pool (`select.coverage_sample`), so its cost grows linearly;
- clusters touched: of k k-means clusters of the pool (`select.clusters`, seeded
  MiniBatchKMeans), how many hold a selected example;
- the leading-verb mix (the instruction's first word, a rough task type) and length;
and the Jaccard overlap of every two selections. Coverage and clusters need the
embeddings; without them they are null and the rest is still there.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"[A-Za-z]+")
TOP_VERBS = 5  # leading verbs named per selection; the rest are summed as "other"


@dataclass(frozen=True)
class ExampleFacts:
    """What the mix and length read of one example."""

    verb: str
    response_words: int


def leading_verb(instruction: str) -> str:
    """The instruction's first word, lowercased ("write", "explain", ...)."""
    found = _WORD.search(instruction)
    return found.group().lower() if found else "(none)"


def coverage(pool: np.ndarray, selected: np.ndarray, block: int = 4096) -> float:
    """Mean over the rows of `pool` of the cosine distance (1 - cosine) to the nearest row of
    `selected` (all unit rows); the pool is taken a block at a time against the whole selection."""
    if not len(pool):
        return float("nan")
    if not len(selected):
        return 1.0  # nothing selected: as far as orthogonal
    total = 0.0
    for start in range(0, len(pool), block):
        nearest = (pool[start : start + block] @ selected.T).max(axis=1)
        total += float(np.sum(1.0 - np.clip(nearest, -1.0, 1.0)))
    return total / len(pool)


def kmeans_labels(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The k-means cluster of each row (MiniBatchKMeans: linear in the rows; seeded)."""
    # scikit-learn is imported here: only runs with embeddings need it, and it is slow to load.
    from sklearn.cluster import MiniBatchKMeans

    k = min(k, len(vectors))
    model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=2048)
    return model.fit_predict(vectors).astype(np.int64)


def clusters_touched(labels: np.ndarray, rows: Sequence[int]) -> int:
    return len(np.unique(labels[np.asarray(rows, dtype=np.int64)])) if len(rows) else 0


def verb_mix(verbs: Sequence[str], top: int = TOP_VERBS) -> dict[str, float]:
    """Shares of the `top` commonest leading verbs (ties by the verb), then of all others."""
    if not verbs:
        return {}
    counts = Counter(verbs)
    named = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    mix = {verb: count / len(verbs) for verb, count in named}
    rest = len(verbs) - sum(count for _, count in named)
    if rest:
        mix["other"] = rest / len(verbs)
    return mix


def jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    first, second = set(a), set(b)
    union = first | second
    return len(first & second) / len(union) if union else 1.0


def describe_selections(
    pool_ids: Sequence[str],
    vectors: np.ndarray | None,
    facts: Mapping[str, ExampleFacts],
    selections: Mapping[str, Sequence[str]],
    *,
    clusters: int,
    coverage_sample: int | None,
    seed: int,
) -> dict:
    """diversity.json's body. `vectors[i]` is the unit embedding of `pool_ids[i]` (None: no
    embeddings); `facts` covers every id of the pool and of the selections."""
    row_of = {example_id: row for row, example_id in enumerate(pool_ids)}
    labels = sample = None
    if vectors is not None and len(pool_ids):
        labels = kmeans_labels(vectors, clusters, seed)
        rng = np.random.default_rng(seed)
        size = len(pool_ids) if coverage_sample is None else min(coverage_sample, len(pool_ids))
        sample = vectors[np.sort(rng.choice(len(pool_ids), size=size, replace=False))]
    described = {}
    for name, ids in selections.items():
        rows = [row_of[i] for i in ids if i in row_of]
        words = [facts[i].response_words for i in ids]
        described[name] = {
            "examples": len(ids),
            "coverage": None if sample is None else round(coverage(sample, vectors[rows]), 6),
            "clusters_touched": None if labels is None else clusters_touched(labels, rows),
            "leading_verbs": {v: round(s, 4) for v, s in verb_mix([facts[i].verb for i in ids]).items()},
            "response_words_mean": round(float(np.mean(words)), 2) if words else None,
            "response_words_median": float(np.median(words)) if words else None,
        }
    names = list(selections)
    return {
        "pool": {
            "examples": len(pool_ids),
            "embeddings": vectors is not None,
            "clusters": None if labels is None else int(len(np.unique(labels))),
            "coverage_sample": None if sample is None else len(sample),
            "leading_verbs": {v: round(s, 4) for v, s in verb_mix([facts[i].verb for i in pool_ids]).items()},
        },
        "selections": described,
        "overlap": {a: {b: round(jaccard(selections[a], selections[b]), 4) for b in names} for a in names},
    }
