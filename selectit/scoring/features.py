"""Per-example features of the `learned` selector, from what the pipeline already has: pure, no I/O.

From the ratings table (every rater x prompt of every example):
- `token.<rater>.<prompt>`:       the paper's token-level score under that prompt
- `sentence.<rater>`:             the rater's sentence level (mean over prompts, shrunk by their spread)
- `expected.<rater>`:             the expected rating sum_k k P'_k, mean over prompts
- `calibrated_expected.<rater>`:  the same of the calibrated distribution (the raters' content-free lean
                                  divided out, selectit/audit/calibration.py), when a lean is given
- `digit_mass.<rater>`:           probability on the digits 1..K, mean over prompts: how readable the
                                  rating text was to the rater

and from elsewhere: `ifd` (instruction-following difficulty, when configured), and the length
features `log_instruction_tokens`, `log_response_tokens` (log(1 + tokens): lengths are
heavy-tailed, and a linear score should not be ruled by the few longest).

The same function builds the features of judged pairs' responses (fitting) and of the pool
(applying), so the two can never disagree on a column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from selectit.scoring import formulas
from selectit.scoring.tables import SENTENCE_PREFIX, aggregate_token_scores, check_ratings, probs_matrix

LENGTH_FEATURES = ("log_instruction_tokens", "log_response_tokens")
IFD = "ifd"


@dataclass(frozen=True)
class FeatureTable:
    ids: list[str]  # example ids, one per row
    names: list[str]  # columns
    values: np.ndarray  # rows x columns; NaN where a value is missing (no digit mass, IFD not computable)

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        at = {e: i for i, e in enumerate(self.ids)}
        return self.values[[at[e] for e in ids]]

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]


def _per_rater_mean(values: np.ndarray, ids: np.ndarray, models: np.ndarray, row_of, rater: str, n: int) -> np.ndarray:
    """Mean over prompts of one rater's per-rating `values`, one per example."""
    total, count = np.zeros(n), np.zeros(n)
    mine = models == rater
    rows = np.fromiter((row_of[e] for e in ids[mine]), dtype=np.int64)
    np.add.at(total, rows, values[mine])
    np.add.at(count, rows, 1)
    with np.errstate(invalid="ignore"):
        return total / count


def rating_features(
    ratings: pa.Table,
    alpha: float,
    authors_softmax: bool,
    calibrated: np.ndarray | None = None,
) -> FeatureTable:
    """The rating features of every example in `ratings`; `calibrated`: each row's calibrated
    digit distribution (None: no calibrated feature)."""
    check_ratings(ratings)
    probs = probs_matrix(ratings)
    token = formulas.token_level(probs, formulas.PAPER, authors_softmax)
    table, _ = aggregate_token_scores(ratings, token, alpha, None)
    ids = table["example_id"].to_pylist()
    row_of = {e: i for i, e in enumerate(ids)}
    n = len(ids)
    rating_ids = np.asarray(ratings["example_id"].to_pylist(), dtype=object)
    models = np.asarray(ratings["model"].to_pylist(), dtype=object)
    prompts = ratings["prompt_id"].to_numpy()
    raters = [c[len(SENTENCE_PREFIX) :] for c in table.column_names if c.startswith(SENTENCE_PREFIX)]
    columns: dict[str, np.ndarray] = {}
    for rater in raters:
        for prompt in sorted(int(p) for p in np.unique(prompts[models == rater])):
            mask = (models == rater) & (prompts == prompt)
            column = np.full(n, np.nan)
            column[[row_of[e] for e in rating_ids[mask]]] = token[mask]
            columns[f"token.{rater}.{prompt}"] = column
        columns[f"sentence.{rater}"] = table[SENTENCE_PREFIX + rater].to_numpy()
        expected = formulas.expected_ratings(probs, authors_softmax)
        columns[f"expected.{rater}"] = _per_rater_mean(expected, rating_ids, models, row_of, rater, n)
        if calibrated is not None:
            calibrated_expected = formulas.expected_ratings(calibrated)
            columns[f"calibrated_expected.{rater}"] = _per_rater_mean(
                calibrated_expected, rating_ids, models, row_of, rater, n
            )
        mass = ratings["mass"].to_numpy()
        columns[f"digit_mass.{rater}"] = _per_rater_mean(mass, rating_ids, models, row_of, rater, n)
    names = list(columns)
    values = np.column_stack([columns[c] for c in names]) if names else np.empty((n, 0))
    return FeatureTable(ids, names, values)


def with_columns(table: FeatureTable, extra: Mapping[str, Mapping[str, float]]) -> FeatureTable:
    """`table` with more columns, each an example id -> value mapping (NaN where an id has none)."""
    names = list(table.names)
    values = [table.values]
    for name, by_id in extra.items():
        names.append(name)
        values.append(np.array([by_id.get(e, np.nan) for e in table.ids], dtype=np.float64)[:, None])
    return FeatureTable(table.ids, names, np.hstack(values))


def length_columns(instruction_tokens: Mapping[str, int], response_tokens: Mapping[str, int]) -> dict:
    """The two length features from token counts per example id."""
    return {
        LENGTH_FEATURES[0]: {e: float(np.log1p(n)) for e, n in instruction_tokens.items()},
        LENGTH_FEATURES[1]: {e: float(np.log1p(n)) for e, n in response_tokens.items()},
    }


def only(table: FeatureTable, names: Sequence[str]) -> FeatureTable:
    """The columns `names` (in that order): a fitted model's features, read from the pool's table."""
    missing = [n for n in names if n not in table.names]
    if missing:
        raise ValueError(f"no feature(s) {missing} among {table.names}")
    return FeatureTable(table.ids, list(names), table.values[:, [table.names.index(n) for n in names]])
