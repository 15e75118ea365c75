"""How much of the pool a selection covers, and what it holds: the numbers of diversity.json.

Per selection (the stage's own, each diversity mode, the fine-tuning baselines):
- coverage: the mean cosine distance from each pool example to its nearest selected one
  (lower: the selection leaves less of the pool far from anything it holds), over a
  seeded sample of the pool (`select.coverage_sample`), so its cost grows linearly;
- clusters touched: of k k-means clusters of the pool (`select.clusters`; centres fitted
  on the coverage sample, seeded), how many hold a selected example;
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
from threadpoolctl import threadpool_limits

from selectit.selection.rows import RankedRows, SubsetRows, as_rows, row_blocks

_WORD = re.compile(r"[A-Za-z]+")
TOP_VERBS = 5  # leading verbs named per selection; the rest are summed as "other"
KMEANS_ITERATIONS = 50


@dataclass(frozen=True)
class ExampleFacts:
    """What the mix and length read of one example."""

    verb: str
    response_words: int


def leading_verb(instruction: str) -> str:
    """The instruction's first word, lowercased ("write", "explain", ...)."""
    found = _WORD.search(instruction)
    return found.group().lower() if found else "(none)"


def coverage(pool: np.ndarray, selected: RankedRows | np.ndarray, cells: int = 1 << 22) -> float:
    """Mean over the rows of `pool` of the cosine distance (1 - cosine) to the nearest row of
    `selected` (all unit rows). The selection is read a block at a time against the whole
    pool, each block's similarity matrix at most `cells` floats (16 MB), whatever the sizes."""
    if not len(pool):
        return float("nan")
    selected = as_rows(selected)
    if not len(selected):
        return 1.0  # nothing selected: as far as orthogonal
    nearest = np.full(len(pool), -np.inf, dtype=np.float32)
    for _, block in row_blocks(selected, max(1, cells // len(pool))):
        np.maximum(nearest, (pool @ block.T).max(axis=1), out=nearest)
    return float(np.mean(1.0 - np.clip(nearest, -1.0, 1.0), dtype=np.float64))


def kmeans_labels(
    vectors: RankedRows | np.ndarray, k: int, seed: int, fit_rows: np.ndarray | None = None
) -> np.ndarray:
    """The k-means cluster of each row. The centres are fitted on `fit_rows` (default: all),
    seeded, one initialisation (k-means++) and at most KMEANS_ITERATIONS Lloyd steps; every
    row then goes to its nearest centre, a block at a time. Fitting on a sample of fixed size
    keeps the cost linear in the rows (MiniBatchKMeans over 5,000 rows took 30 s here)."""
    # scikit-learn is imported here: only runs with embeddings need it, and it is slow to load.
    from sklearn.cluster import KMeans

    vectors = as_rows(vectors)
    sample = vectors.take(np.arange(len(vectors)) if fit_rows is None else fit_rows)
    model = KMeans(n_clusters=min(k, len(sample)), n_init=1, max_iter=KMEANS_ITERATIONS, random_state=seed)
    with threadpool_limits(limits=1):  # small products; threads cost more than they save on a busy machine
        model.fit(sample)
    centres = model.cluster_centers_.astype(np.float32)
    squared = (centres**2).sum(axis=1)
    labels = np.empty(len(vectors), dtype=np.int64)
    for start, block in row_blocks(vectors, 4096):
        # argmin of |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every centre.
        labels[start : start + len(block)] = np.argmin(squared - 2 * block @ centres.T, axis=1)
    return labels


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
    vectors: RankedRows | np.ndarray | None,
    facts: Mapping[str, ExampleFacts],
    selections: Mapping[str, Sequence[str]],
    *,
    clusters: int,
    coverage_sample: int | None,
    seed: int,
) -> dict:
    """diversity.json's body. `vectors[i]` is the unit embedding of `pool_ids[i]` (an array
    or `rows.RankedRows`, read a block at a time; None: no embeddings); `facts` covers
    every id of the pool and of the selections."""
    row_of = {example_id: row for row, example_id in enumerate(pool_ids)}
    labels = sample = None
    if vectors is not None and len(pool_ids):
        vectors = as_rows(vectors)
        size = len(pool_ids) if coverage_sample is None else min(coverage_sample, len(pool_ids))
        rows = np.sort(np.random.default_rng(seed).choice(len(pool_ids), size=size, replace=False))
        labels = kmeans_labels(vectors, clusters, seed, fit_rows=rows)
        sample = vectors.take(rows)
    described = {}
    for name, ids in selections.items():
        rows = [row_of[i] for i in ids if i in row_of]
        words = [facts[i].response_words for i in ids]
        described[name] = {
            "examples": len(ids),
            "coverage": None if sample is None else round(coverage(sample, SubsetRows(vectors, np.sort(rows))), 6),
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


def _cell(value, form: str) -> str:
    return "—" if value is None else format(value, form)


def selection_rows(report: Mapping) -> list[dict[str, str]]:
    """diversity.json's selections as table rows, for the card and the run report."""
    clusters = report["pool"]["clusters"]
    return [
        {
            "selection": name,
            "examples": f"{d['examples']:,}",
            "coverage (mean cosine distance, lower covers more)": _cell(d["coverage"], ".4f"),
            "clusters touched": "—" if d["clusters_touched"] is None else f"{d['clusters_touched']} of {clusters}",
            "response words (mean / median)": f"{_cell(d['response_words_mean'], '.1f')} / "
            f"{_cell(d['response_words_median'], '.0f')}",
            "leading verbs": ", ".join(f"{verb} {share:.0%}" for verb, share in d["leading_verbs"].items()),
        }
        for name, d in report["selections"].items()
    ]


def overlap_rows(report: Mapping) -> list[dict[str, str]]:
    """The Jaccard overlap of every two selections, one row per selection."""
    return [
        {"": name, **{other: f"{value:.3f}" for other, value in row.items()}} for name, row in report["overlap"].items()
    ]


def markdown_table(rows: Sequence[Mapping[str, str]]) -> str:
    if not rows:
        return ""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row[h] for h in header) + " |" for row in rows])


def diversity_summary(report: Mapping) -> str:
    """What the numbers of diversity.json were measured on, in a few sentences."""
    pool = report["pool"]
    notes = [
        f"Diversity mode: {report['diversity']}; budget {report['budget']:,} examples "
        f"(R% of the {pool['examples']:,} scored, after {report['semantic_duplicates']:,} semantic duplicates).",
    ]
    short = {mode: n for mode, n in report["shortfall"].items() if n}
    if short:
        notes.append(
            "The repr filter ran out of ranking before the budget was filled: "
            + ", ".join(f"{mode} kept {n:,} fewer" for mode, n in short.items())
            + " (raise select.max_similarity to fill it)."
        )
    if not pool["embeddings"]:
        notes.append("No embeddings in this run: coverage and clusters are not measured.")
    else:
        notes.append(
            f"Coverage over a seeded sample of {pool['coverage_sample']:,} pool examples; "
            f"clusters: k-means with k = {pool['clusters']} over the pool."
        )
    return " ".join(notes)


def diversity_markdown(report: Mapping) -> str:
    """The card's diversity section body."""
    return "\n".join(
        [
            diversity_summary(report),
            "",
            markdown_table(selection_rows(report)),
            "",
            "Jaccard overlap of the selections:",
            "",
            markdown_table(overlap_rows(report)),
        ]
    )


def diversity_metrics(report: Mapping) -> dict[str, float]:
    """diversity.json's numbers as flat metric names (MLflow): per selection `coverage/<name>`
    and `clusters_touched/<name>` (null ones are skipped by the tracker), and the counts."""
    metrics: dict[str, float] = {
        "semantic_duplicates": report["semantic_duplicates"],
        "shortfall": report["shortfall"][report["diversity"]],
    }
    for name, described in report["selections"].items():
        metrics[f"coverage/{name}"] = described["coverage"]
        metrics[f"clusters_touched/{name}"] = described["clusters_touched"]
    return metrics
