"""The Parquet tables the scorer writes, their schemas, and the aggregation between them.

ratings.parquet keeps every raw digit distribution (example x prompt x rater),
so alpha, rater weights and the authors' softmax can change without running a
model again: `aggregate` recomputes scores.parquet from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from selectit.config import AggregateConfig
from selectit.core.errors import InputError, RatingsError
from selectit.core.io import atomic_write
from selectit.core.records import Example, Reject
from selectit.scoring import formulas as scoring

RATINGS_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),  # content id of the example
        ("model", pa.string()),  # rater name (short name, hub id, or the folder's name)
        ("model_params", pa.int64()),  # rater parameter count, from the loaded model
        ("prompt_id", pa.int16()),  # index of the rating prompt in the prompt set
        ("prompt_version", pa.string()),  # hash of prompts, template, cue and K (and the layout, if not prompt-first)
        ("template", pa.string()),  # plain or chat
        ("k", pa.int8()),  # rating scale 1..K
        ("probs", pa.list_(pa.float64())),  # the K raw next-token probabilities of the digits 1..K, in digit order
        ("mass", pa.float64()),  # their sum: how much of the next-token probability is on the digits
        ("top_is_digit", pa.bool_()),  # whether the most likely next token was one of the digits
        ("token_score", pa.float64()),  # the paper's token-level score (without the authors' softmax)
        ("n_tokens", pa.int32()),  # length of the rating text in tokens
        ("truncated", pa.bool_()),  # whether the response was shortened to fit the context
    ]
)

SENTENCE_PREFIX = "sentence_score:"


SCORES_KEY_COLUMNS = ("example_id", "model_score", "rank")


def write_parquet(table: pa.Table, path: str | Path) -> None:
    atomic_write(path, lambda handle: pq.write_table(table, handle))


def _read_table(path: str | Path, what: str, needed: Sequence[str], hint: str) -> pa.Table:
    """A Parquet table that must hold `needed` columns; the error names the file, the
    table that was expected and what was found instead."""
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file ({what} expected)") from None
    except pa.ArrowInvalid as exc:
        raise InputError(f"{path}: not a Parquet file ({what} expected): {exc}") from None
    missing = [name for name in needed if name not in table.column_names]
    if missing:
        raise InputError(
            f"{path}: not {what}: no column(s) {missing}; found columns "
            f"{table.column_names[:8]}{' ...' if table.num_columns > 8 else ''}{hint}"
        )
    return table


def read_ratings(path: str | Path) -> pa.Table:
    """A ratings table (ratings.parquet, one row per example x prompt x rater)."""
    table = _read_table(
        path,
        "a ratings table (ratings.parquet)",
        RATINGS_SCHEMA.names,
        "; scores.parquet is the per-example table that `select` reads",
    )
    return table.select(RATINGS_SCHEMA.names).cast(RATINGS_SCHEMA)


def read_scores(path: str | Path) -> pa.Table:
    """A scores table (scores.parquet, one row per example, ranked)."""
    return _read_table(
        path,
        "a scores table (scores.parquet)",
        SCORES_KEY_COLUMNS,
        "; ratings.parquet is the per-rating table that `aggregate` reads",
    )


def without_examples(ratings: pa.Table, example_ids) -> pa.Table:
    """The ratings of every example except these (a container of ids)."""
    if not example_ids:
        return ratings
    return ratings.filter(pa.array([e not in example_ids for e in ratings["example_id"].to_pylist()]))


def probs_matrix(ratings: pa.Table) -> np.ndarray:
    k = int(pc.max(ratings["k"]).as_py())
    flat = pc.list_flatten(ratings["probs"]).to_numpy()
    return flat.reshape(-1, k)


def aggregate(
    ratings: pa.Table,
    alpha: float,
    authors_softmax: bool,
    weights: Mapping[str, float] | None,
    token_score: str = scoring.PAPER,
) -> tuple[pa.Table, dict[str, float]]:
    """Sentence score per rater and the weighted model score for every example, from the
    token-level score `token_score` names (the paper's, or the expected rating).

    Returns the per-example table, ranked best first, and the normalised weights.
    Fails if any example lacks a rating from any (rater, prompt): a score built
    from part of the ratings would not be comparable with the others.
    """
    check_ratings(ratings)
    token = token_level_scores(ratings, token_score, authors_softmax)
    return aggregate_token_scores(ratings, token, alpha, weights)


@dataclass(frozen=True)
class Scores:
    table: pa.Table  # scores.parquet: one row per example, ranked best first
    weights: dict[str, float]  # rater -> normalised weight

    @property
    def nan_scores(self) -> int:
        return int(np.isnan(self.table["model_score"].to_numpy()).sum())

    @property
    def quantiles(self) -> dict[str, float]:
        """min, p25, median, p75 and max of the model-level score."""
        values = np.nanquantile(self.table["model_score"].to_numpy(), [0, 0.25, 0.5, 0.75, 1]).tolist()
        return dict(zip(["min", "p25", "median", "p75", "max"], values, strict=True))


def score_ratings(ratings: pa.Table, cfg: AggregateConfig, out: str | Path) -> Scores:
    """`aggregate` with the aggregate settings of params.yaml; the scores table is written to `out`.
    The aggregate stage and `selectit aggregate` both call it."""
    table, weights = aggregate(ratings, cfg.alpha, cfg.authors_softmax, cfg.weights, cfg.token_score)
    write_parquet(table, out)
    return Scores(table, weights)


def token_level_scores(ratings: pa.Table, token_score: str, authors_softmax: bool) -> np.ndarray:
    """One token-level score per row of `ratings`, recomputed from its digit distribution.

    The stored `token_score` column is the paper's score as rated; whatever the
    aggregate settings name is computed here, so changing them needs no new inference."""
    if ratings.num_rows == 0:
        return np.empty(0)
    return scoring.token_level(probs_matrix(ratings), token_score, authors_softmax)


def with_token_scores(ratings: pa.Table, settings) -> pa.Table:
    """`ratings` with its token_score column (the paper's, as rated) replaced by the token-level
    score that `settings` (an AggregateConfig: token_score, authors_softmax) name."""
    token = token_level_scores(ratings, settings.token_score, settings.authors_softmax)
    column = ratings.schema.get_field_index("token_score")
    return ratings.set_column(column, "token_score", pa.array(token, pa.float64()))


def check_ratings(ratings: pa.Table) -> None:
    if ratings.num_rows == 0:
        raise RatingsError("the ratings table is empty")
    if len(pc.unique(ratings["k"])) != 1 or len(pc.unique(ratings["prompt_version"])) != 1:
        raise RatingsError("the ratings mix different K or prompt versions; score them separately")


def aggregate_token_scores(
    ratings: pa.Table, token: np.ndarray, alpha: float, weights: Mapping[str, float] | None
) -> tuple[pa.Table, dict[str, float]]:
    """`aggregate` from token-level scores already computed, one per row of `ratings`
    (the audit's variants: the expected rating, calibrated distributions)."""
    ids = ratings["example_id"].to_numpy(zero_copy_only=False)
    models = ratings["model"].to_numpy(zero_copy_only=False)
    prompts = ratings["prompt_id"].to_numpy()
    example_ids = list(dict.fromkeys(ids))  # first-appearance order
    model_names = list(dict.fromkeys(models))
    prompt_ids = np.unique(prompts)
    row_of = {e: i for i, e in enumerate(example_ids)}
    col_of = {p: j for j, p in enumerate(prompt_ids)}
    rows = np.fromiter((row_of[e] for e in ids), dtype=np.int64, count=len(ids))
    cols = np.fromiter((col_of[p] for p in prompts), dtype=np.int64, count=len(prompts))

    params = {}
    sentence = {}
    for name in model_names:
        mine = models == name
        grid = np.full((len(example_ids), len(prompt_ids)), np.nan)
        seen = np.zeros_like(grid, dtype=bool)
        grid[rows[mine], cols[mine]] = token[mine]
        seen[rows[mine], cols[mine]] = True
        if not seen.all():
            raise RatingsError(
                f"rater {name!r} has {int((~seen).sum())} missing (example, prompt) ratings; "
                "every example needs a rating from every rater and prompt"
            )
        sentence[name] = scoring.sentence_scores(grid, alpha)
        params[name] = int(ratings["model_params"].filter(pa.array(mine))[0].as_py())
    normalised = scoring.model_weights(params, weights)
    total = scoring.model_scores(sentence, normalised)

    # Best first; NaN (no probability mass on any digit) last; ties by id for determinism.
    order = sorted(
        range(len(example_ids)), key=lambda i: (np.isnan(total[i]), -np.nan_to_num(total[i]), example_ids[i])
    )
    columns = {"example_id": pa.array([example_ids[i] for i in order], pa.string())}
    for name in model_names:
        columns[SENTENCE_PREFIX + name] = pa.array(sentence[name][order], pa.float64())
    columns["model_score"] = pa.array(total[order], pa.float64())
    columns["rank"] = pa.array(np.arange(1, len(order) + 1), pa.int32())
    return pa.table(columns), normalised


def reject_unreadable(
    examples: Sequence[Example], ratings: pa.Table, unfit: Mapping[str, str]
) -> tuple[pa.Table, list[Reject]]:
    """An example that some rater cannot read has no model-level score: it leaves every
    rater's table and becomes one reject (the first rater's reason)."""
    rejects = [Reject(e.source, e.row, None, unfit[e.id], e.raw) for e in examples if e.id in unfit]
    return without_examples(ratings, unfit), rejects
