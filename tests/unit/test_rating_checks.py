"""The GX check of the rating tables (selectit/checks/ratings.py) the aggregate stage runs."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from selectit.checks.ratings import RatingCheckFailed, check_ratings
from selectit.scoring.tables import RATINGS_SCHEMA

K = 5
RATERS = ["small", "big"]
PROMPTS = 2
IDS = ["e1", "e2", "e3"]
PARAMS = {"small": 100, "big": 300}
# rater -> the digit mass of its 6 ratings (e1 p0, e1 p1, e2 p0, ...).
MASS = {"small": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], "big": [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]}


def rating_row(example_id, model, prompt_id, probs, top_is_digit=True):
    mass = float(sum(probs))
    return {
        "example_id": example_id,
        "model": model,
        "model_params": PARAMS.get(model, 1),
        "prompt_id": prompt_id,
        "prompt_version": "v1",
        "template": "plain",
        "k": K,
        "probs": [float(p) for p in probs],
        "mass": mass,
        "top_is_digit": top_is_digit,
        "token_score": 1.0 if mass > 0 else math.nan,
        "n_tokens": 10,
        "truncated": False,
    }


def good_rows() -> list[dict]:
    rows = []
    for model in RATERS:
        masses = iter(MASS[model])
        for example_id in IDS:
            for prompt_id in range(PROMPTS):
                mass = next(masses)  # all of it on the digit 3
                rows.append(rating_row(example_id, model, prompt_id, [0, 0, mass, 0, 0], top_is_digit=mass >= 0.5))
    return rows


def table(rows) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=RATINGS_SCHEMA)


def check(rows, **kwargs):
    return check_ratings(table(rows), set(IDS), RATERS, PROMPTS, **kwargs)


def test_good_table_passes_with_the_mass_summary():
    result = check(good_rows())

    assert result.docs_index is None
    assert result.expectations and all(e["success"] for e in result.expectations)
    assert all(e["unexpected_count"] == 0 for e in result.expectations)
    assert set(result.expectations[0]) == {"expectation", "column", "success", "unexpected_count"}
    checked = {(e["expectation"], e["column"]) for e in result.expectations}
    assert {
        ("expect_column_values_to_be_unique", "key"),
        ("expect_column_values_to_be_in_set", "key"),
        ("expect_table_row_count_to_equal", None),
        ("expect_column_values_to_be_between", "prob_max"),
        ("expect_column_values_to_not_be_null", "mass"),
    } <= checked
    assert list(result.mass) == RATERS
    small, big = result.mass["small"], result.mass["big"]
    assert small["mean"] == pytest.approx(0.65)
    assert small["min"] == pytest.approx(0.4)
    assert small["p05"] == pytest.approx(0.425)  # linear between 0.4 and 0.5
    assert small["median"] == pytest.approx(0.65)
    assert small["top_is_digit_share"] == pytest.approx(5 / 6)
    assert big == pytest.approx({"mean": 3.5 / 6, "min": 0.25, "p05": 0.25, "median": 0.5, "top_is_digit_share": 4 / 6})


def _broken(change):
    rows = good_rows()
    change(rows)
    return rows


def _set_prob(rows, value):
    rows[3]["probs"][0] = value  # small, e2, prompt 1


def _drop(rows):
    del rows[7]  # big, e1, prompt 1


def _duplicate(rows):
    rows.append(dict(rows[2]))


def _stranger(rows):
    rows.append(rating_row("zz", "small", 0, [0, 0, 1, 0, 0]))


@pytest.mark.parametrize(
    "change, names",
    [
        (
            lambda rows: _set_prob(rows, 1.5),
            [
                r"expect_column_values_to_be_between\(prob_max\) failed for 1 row "
                r"\(first: example e2, rater small, prompt 1; prob_max=1\.5\)"
            ],
        ),
        (
            lambda rows: _set_prob(rows, math.nan),
            [r"expect_column_values_to_be_in_set\(prob_nans\) failed for 1 row \(first: example e2, rater small"],
        ),
        (
            _drop,
            [
                r"expect_table_row_count_to_equal failed: 11 rows, expected 12; 1 expected \(example, rater, prompt\) "
                r"has no rating \(e\.g\. example e1, rater big, prompt 1\)",
                "re-run the score stage",
            ],
        ),
        (
            _duplicate,
            [
                r"expect_column_values_to_be_unique\(key\) failed for 2 rows "
                r"\(first: example e2, rater small, prompt 0\)",
                r"expect_table_row_count_to_equal failed: 13 rows, expected 12",
            ],
        ),
        (
            _stranger,
            [
                r"expect_column_values_to_be_in_set\(key\) failed: 1 rated \(example, rater, prompt\) "
                r"is not expected \(e\.g\. example zz, rater small, prompt 0\)",
                r"expect_table_row_count_to_equal failed: 13 rows, expected 12",
            ],
        ),
    ],
    ids=["prob_1.5", "prob_nan", "missing_row", "duplicate_row", "unexpected_id"],
)
def test_bad_tables_raise_naming_the_expectation(change, names):
    with pytest.raises(RatingCheckFailed) as failure:
        check(_broken(change))
    for name in names:
        assert failure.match(name)
    failed = {(e["expectation"], e["column"]) for e in failure.value.expectations if not e["success"]}
    assert failed and len(failed) <= 4  # the expectations named, not everything


def test_counts_of_a_failure_are_reported():
    rows = good_rows()
    for row in rows[:3]:
        row["mass"] = 0.0  # no digit rated
        row["token_score"] = math.nan
    with pytest.raises(RatingCheckFailed, match=r"between\(mass\) failed for 3 rows") as failure:
        check(rows)
    assert failure.match(r"not_be_null\(token_score\) failed for 3 rows")
    counts = {(e["expectation"], e["column"]): e["unexpected_count"] for e in failure.value.expectations}
    assert counts[("expect_column_values_to_be_between", "mass")] == 3
    assert counts[("expect_column_values_to_not_be_null", "mass")] == 0


def test_data_docs_are_written(tmp_path):
    docs = tmp_path / "reports" / "ratings"
    result = check(good_rows(), docs_dir=docs)
    assert result.docs_index == (docs / "index.html").resolve()
    assert result.docs_index.is_file()

    with pytest.raises(RatingCheckFailed, match="report: .*index.html") as failure:
        check(_broken(_drop), docs_dir=tmp_path / "failed")
    assert failure.value.docs_index.is_file()
