"""A Great Expectations check of the rating tables, run by the ``aggregate`` stage.

`check_ratings` turns the ratings table (RATINGS_SCHEMA, one row per example x
rater x prompt) into a pandas frame with one row per rating and runs the GX
(1.x) suite `ratings_suite` declares over it (see `selectit.checks.suite`). The frame carries per-row helper
columns for the ``probs`` list (its length, smallest and largest probability
and number of NaN probabilities) and a composite ``key`` column, the JSON text
of ``[example_id, model, prompt_id]``, so GX decides every check:

* values: every probability in [0, 1] and not NaN, as many probabilities as
  the scale has digits, the digit mass in (0, 1 + 1e-6] and not NaN (a mass of
  0 means the rater never answered with a digit, so it fails too) and a
  token-level score that is not NaN;
* completeness: the keys are unique, their set equals the expected set (every
  expected id x every rater x prompts 0..num_prompts-1) and the row count is
  the size of that set, so there is exactly one rating per key.

Any failure raises `RatingCheckFailed`, naming each failing expectation with
its counts (after the Data Docs are written, when ``docs_dir`` is given: the
report of a failed run can be opened too). On success the result carries one
summary per expectation and the digit-mass statistics of each rater.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from selectit.checks.suite import DATASET, Expectation, Outcome, failed_rows, rows_text, run_suite
from selectit.core.errors import RatingCheckFailed

if TYPE_CHECKING:
    import pandas as pd

SUITE_NAME = "selectit_ratings"
DOCS_SITE_NAME = "selectit_rating_checks"
# Largest digit mass accepted: the digits' probabilities sum to at most 1, up to rounding.
MASS_MAX = 1 + 1e-6
# The frame's columns: the rating's key parts, the composite key, helper
# columns for the probs list, the checked scalars, and the row's position in
# the table (the index GX reports failing rows by).
COLUMNS = (
    "position",
    "key",
    "expected",
    "example_id",
    "model",
    "prompt_id",
    "k",
    "n_probs",
    "prob_min",
    "prob_max",
    "prob_nans",
    "mass",
    "token_score",
)
_NEEDED = ("example_id", "model", "prompt_id", "k", "probs", "mass", "top_is_digit", "token_score")


@dataclass
class RatingCheckResult:
    expectations: list[dict]  # one per expectation: expectation, column, success, unexpected_count
    mass: dict  # rater -> {mean, min, p05, median, top_is_digit_share} of the digit mass
    docs_index: Path | None  # the Data Docs index.html if docs_dir was given


def rating_key(example_id: Any, model: Any, prompt_id: Any) -> str:
    """The composite key of one rating: the JSON text of [example_id, model, prompt_id]."""
    prompt = None if prompt_id is None else int(prompt_id)
    return json.dumps([example_id, model, prompt], ensure_ascii=False, separators=(",", ":"))


def expected_keys(expected_ids: set[str], raters: list[str], num_prompts: int) -> set[str]:
    return {rating_key(e, rater, p) for e in expected_ids for rater in raters for p in range(num_prompts)}


@dataclass(frozen=True)
class ExpectedRatings:
    """The (example, rater, prompt) keys that must be rated, without spelling them out: a
    set of every key text would cost as much as the frame's key column again; the set is
    built only to name the missing keys of a failed check."""

    ids: frozenset[str]
    raters: tuple[str, ...]
    num_prompts: int

    def __len__(self) -> int:
        return len(self.ids) * len(self.raters) * self.num_prompts

    def expects(self, example_id: Any, model: Any, prompt_id: Any) -> bool:
        """Whether `rating_key(example_id, model, prompt_id)` is one of the keys."""
        return (
            example_id in self.ids
            and model in self.raters
            and prompt_id is not None
            and 0 <= int(prompt_id) < self.num_prompts
        )

    def keys(self) -> set[str]:
        return expected_keys(set(self.ids), list(self.raters), self.num_prompts)


def _shared_strings(column: pa.ChunkedArray) -> list:
    """A string column as Python values, equal values sharing one object: ids repeat once
    per rater and prompt, and model names on every row, so this saves a string a row."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    values = encoded.dictionary.to_pylist()
    return [None if i is None else values[i] for i in encoded.indices.to_pylist()]


def _prob_stats(probs: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, ...]:
    """Per row: number of probabilities, smallest, largest (NaN ignored) and NaN count.

    A null inside a list counts as NaN; a null or empty list has 0 probabilities
    (and NaN as its smallest and largest)."""
    lengths = pc.fill_null(pc.list_value_length(probs), 0).to_numpy(zero_copy_only=False)
    lengths = lengths.astype(np.int64)
    flat = pc.list_flatten(probs).to_numpy(zero_copy_only=False).astype(np.float64)
    n = len(lengths)
    low, high = np.full(n, np.nan), np.full(n, np.nan)
    nans = np.zeros(n, dtype=np.int64)
    filled = lengths > 0
    if filled.any():
        starts = (np.cumsum(lengths) - lengths)[filled]  # consecutive segments of flat
        with np.errstate(invalid="ignore"):
            low[filled] = np.fmin.reduceat(flat, starts)
            high[filled] = np.fmax.reduceat(flat, starts)
        nans[filled] = np.add.reduceat(np.isnan(flat).astype(np.int64), starts)
    return lengths, low, high, nans


def _frame(ratings: pa.Table, expected: ExpectedRatings) -> pd.DataFrame:
    import pandas as pd

    ids = _shared_strings(ratings["example_id"])
    models = _shared_strings(ratings["model"])
    prompts = ratings["prompt_id"].to_pylist()
    row_keys = [rating_key(*parts) for parts in zip(ids, models, prompts, strict=True)]
    n_probs, low, high, nans = _prob_stats(ratings["probs"])
    # Strings stay object dtype, as in selectit.checks.examples; numbers are float
    # where a null may occur, so GX sees a null as NaN.
    data = {
        "position": pd.Series(range(ratings.num_rows), dtype="int64"),
        "key": pd.Series(row_keys, dtype=object),
        "expected": pd.Series(
            [expected.expects(*parts) for parts in zip(ids, models, prompts, strict=True)], dtype=bool
        ),
        "example_id": pd.Series(ids, dtype=object),
        "model": pd.Series(models, dtype=object),
        "prompt_id": pd.Series(prompts, dtype="float64"),
        "k": pd.Series(ratings["k"].to_pylist(), dtype="float64"),
        "n_probs": pd.Series(n_probs, dtype="int64"),
        "prob_min": pd.Series(low, dtype="float64"),
        "prob_max": pd.Series(high, dtype="float64"),
        "prob_nans": pd.Series(nans, dtype="int64"),
        "mass": pd.Series(ratings["mass"].to_pylist(), dtype="float64"),
        "token_score": pd.Series(ratings["token_score"].to_pylist(), dtype="float64"),
    }
    return pd.DataFrame({name: data[name] for name in COLUMNS})


# How a failure reads (every check is dataset-level: any failure fails the table).


def _describe_key(key: str) -> str:
    try:
        example_id, model, prompt_id = json.loads(key)
    except (ValueError, TypeError):
        return key
    return f"example {example_id}, rater {model}, prompt {prompt_id}"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _first(keys) -> str:
    """An "(e.g. ...)" note naming the first of the keys."""
    keys = sorted(keys, key=str)
    return f" (e.g. {_describe_key(keys[0])})" if keys else ""


def _failed_ratings(outcome: Outcome) -> str:
    """'... failed for N rows (first: <its key>; <the checked values>)'."""

    def where(row) -> str:
        shown = ", ".join(f"{name}={_plain(row[name])!r}" for name in outcome.expectation.columns if name != "key")
        return f"{_describe_key(row['key'])}{'; ' + shown if shown else ''}"

    return failed_rows(outcome, where)


def _unexpected_keys(outcome: Outcome) -> str:
    n = outcome.unexpected_count
    return (
        f"{outcome.label} failed: {n} rated (example, rater, prompt) "
        f"{'is' if n == 1 else 'are'} not expected{_first(outcome.rows['key'])}"
    )


def _wrong_row_count(expected: ExpectedRatings, outcome: Outcome) -> str:
    keys = expected.keys()
    missing = keys - set(outcome.frame["key"])
    gap = (
        (
            f"; {len(missing)} expected (example, rater, prompt) "
            f"{'has' if len(missing) == 1 else 'have'} no rating{_first(missing)}"
        )
        if missing
        else ""
    )
    return f"{outcome.label} failed: {rows_text(len(outcome.frame))}, expected {len(keys)}{gap}"


def ratings_suite(expected: ExpectedRatings, counts: dict[str, int]) -> list[Expectation]:
    """The aggregate stage's expectations, in the order their results are reported."""
    return _probability_checks() + _mass_and_score_checks() + _completeness_checks(expected, counts)


def _probability_checks() -> list[Expectation]:
    """Each rating's digit probabilities: in [0, 1], none missing, one per digit of the scale."""
    return [
        Expectation(
            "prob_min",
            DATASET,
            "ExpectColumnValuesToBeBetween",
            {"column": "prob_min", "min_value": 0.0},
            "Guards that no probability in probs is below 0 (prob_min is the row's smallest).",
            _failed_ratings,
        ),
        Expectation(
            "prob_max",
            DATASET,
            "ExpectColumnValuesToBeBetween",
            {"column": "prob_max", "max_value": 1.0},
            "Guards that no probability in probs is above 1 (prob_max is the row's largest).",
            _failed_ratings,
        ),
        # Probabilities: no NaN (or null) among them, which the range checks would skip.
        Expectation(
            "prob_nans",
            DATASET,
            "ExpectColumnValuesToBeInSet",
            {"column": "prob_nans", "value_set": [0]},
            "Guards against NaN or null probabilities in probs (prob_nans counts them per row).",
            _failed_ratings,
        ),
        # Probabilities: one per digit of the scale, as tables.probs_matrix reshapes them.
        Expectation(
            "n_probs",
            DATASET,
            "ExpectColumnPairValuesToBeEqual",
            {"column_A": "n_probs", "column_B": "k"},
            "Guards that probs has one probability per digit 1..k (n_probs is its length).",
            _failed_ratings,
        ),
    ]


def _mass_and_score_checks() -> list[Expectation]:
    """Each rating's digit mass and token-level score: present, and the mass in (0, 1]."""
    return [
        # Digit mass: not NaN, which the range check would skip.
        Expectation(
            "not_null:mass",
            DATASET,
            "ExpectColumnValuesToNotBeNull",
            {"column": "mass"},
            "Guards against a NaN or missing digit mass.",
            _failed_ratings,
        ),
        Expectation(
            "range:mass",
            DATASET,
            "ExpectColumnValuesToBeBetween",
            {"column": "mass", "min_value": 0.0, "max_value": MASS_MAX, "strict_min": True},
            f"Guards the digit mass: above 0 (a mass of 0 means no digit was rated) and at most "
            f"{MASS_MAX!r} (1 up to rounding).",
            _failed_ratings,
        ),
        Expectation(
            "not_null:token_score",
            DATASET,
            "ExpectColumnValuesToNotBeNull",
            {"column": "token_score"},
            "Guards against a NaN token-level score (it is NaN only where the mass is 0, "
            "which fails the mass check too).",
            _failed_ratings,
        ),
    ]


def _completeness_checks(expected: ExpectedRatings, counts: dict[str, int]) -> list[Expectation]:
    """Exactly one rating per expected (example, rater, prompt): no duplicate, none unexpected, none missing."""
    incomplete = "every validated example needs exactly one rating per rater and prompt: re-run the score stage"
    return [
        Expectation(
            "unique:key",
            DATASET,
            "ExpectColumnValuesToBeUnique",
            {"column": "key"},
            "Guards against two ratings of the same (example, rater, prompt).",
            _failed_ratings,
            advice=incomplete,
        ),
        # Completeness: no rating outside the expected examples x raters x prompts. The
        # membership is a helper column, so the suite does not carry every key (520k
        # keys for all of Alpaca with 5 prompts would swamp the Data Docs).
        Expectation(
            "set:key",
            DATASET,
            "ExpectColumnValuesToBeInSet",
            {"column": "expected", "value_set": [True]},
            f"Guards that every rating is of an expected example x one of {counts['raters']} "
            f"raters x prompts 0..{counts['prompts'] - 1}; with uniqueness and the row count "
            "this means every expected key is rated exactly once.",
            _unexpected_keys,
            shown_column="key",
            advice=incomplete,
        ),
        Expectation(
            "row_count",
            DATASET,
            "ExpectTableRowCountToEqual",
            {"value": len(expected)},
            f"Guards one row per expected key: {counts['ids']} ids x {counts['raters']} raters x "
            f"{counts['prompts']} prompts.",
            partial(_wrong_row_count, expected),
            advice=incomplete,
        ),
    ]


def _mass_summary(ratings: pa.Table, raters: list[str]) -> dict:
    models = np.asarray(_shared_strings(ratings["model"]), dtype=object)
    mass = ratings["mass"].to_numpy().astype(np.float64)
    top = np.asarray(ratings["top_is_digit"].to_pylist(), dtype=bool)
    summary = {}
    for rater in raters:
        mine = models == rater
        if not mine.any():
            continue
        values = mass[mine]
        summary[rater] = {
            "mean": float(values.mean()),
            "min": float(values.min()),
            "p05": float(np.quantile(values, 0.05)),
            "median": float(np.median(values)),
            "top_is_digit_share": float(top[mine].mean()),
        }
    return summary


def check_ratings(
    ratings: pa.Table, expected_ids: set[str], raters: list[str], num_prompts: int, docs_dir: Path | None = None
) -> RatingCheckResult:
    """Run the suite over the ratings; return the summaries and each rater's digit mass.

    ``expected_ids`` are the examples that must be rated, each exactly once by
    every rater in ``raters`` with every prompt 0..num_prompts-1. Raises
    `RatingCheckFailed` when the table is empty, lacks a column, or fails an
    expectation; with ``docs_dir`` the Data Docs are written first.
    """
    raters = list(dict.fromkeys(raters))
    if not raters:
        raise ValueError("check_ratings needs at least one rater")
    if num_prompts < 1:
        raise ValueError(f"num_prompts must be >= 1, got {num_prompts}")
    absent = [name for name in _NEEDED if name not in ratings.column_names]
    if absent:
        raise RatingCheckFailed(f"rating checks failed: the ratings table has no column {', '.join(absent)}")
    if ratings.num_rows == 0:
        raise RatingCheckFailed("rating checks failed: the ratings table is empty")
    expected = ExpectedRatings(frozenset(expected_ids), tuple(raters), num_prompts)
    counts = {"ids": len(expected.ids), "raters": len(raters), "prompts": num_prompts}

    run = run_suite(
        _frame(ratings, expected),
        ratings_suite(expected, counts),
        suite_name=SUITE_NAME,
        asset_name="ratings",
        docs_site=DOCS_SITE_NAME,
        docs_dir=docs_dir,
    )
    run.fail_on_dataset_level(RatingCheckFailed, "rating checks failed: ")
    return RatingCheckResult(expectations=run.summaries, mass=_mass_summary(ratings, raters), docs_index=run.docs_index)
