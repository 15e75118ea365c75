"""Aggregation of the ratings table (selectit/tables.py) and top-R% selection (selectit/selection.py)."""

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from selectit.core.errors import InputError
from selectit.core.records import Example
from selectit.scoring.tables import RATINGS_SCHEMA, SENTENCE_PREFIX, RatingsError, aggregate
from selectit.selection.output import write_selection
from selectit.selection.top import n_to_keep, select_top

K = 5
PARAMS = {"small": 100, "big": 300}  # default weights 100/400 = 0.25, 300/400 = 0.75


def one_hot(digit: int, k: int = K) -> list[float]:
    return [1.0 if d == digit else 0.0 for d in range(1, k + 1)]


def rating_row(example_id, model, prompt_id, probs, k=K, version="v1"):
    return {
        "example_id": example_id,
        "model": model,
        "model_params": PARAMS[model],
        "prompt_id": prompt_id,
        "prompt_version": version,
        "template": "plain",
        "k": k,
        "probs": list(map(float, probs)),
        "mass": float(sum(probs)),
        "top_is_digit": True,
        "token_score": 0.0,  # aggregate recomputes token scores from probs
        "n_tokens": 10,
        "truncated": False,
    }


def table(rows) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=RATINGS_SCHEMA)


# A one-hot rating on digit d has token score d, so sentence scores are easy by hand.
DIGITS = {  # example -> rater -> digit per prompt 0, 1, 2
    "e1": {"small": [5, 5, 5], "big": [4, 4, 4]},
    "e2": {"small": [1, 1, 1], "big": [5, 5, 5]},
    "e3": {"small": [5, 3, 1], "big": [3, 3, 3]},
    "e4": {"small": [2, 2, 2], "big": [2, 2, 2]},
}


def hand_table() -> pa.Table:
    rows = [
        rating_row(e, model, p, one_hot(d))
        for e, by_model in DIGITS.items()
        for model, digits in by_model.items()
        for p, d in enumerate(digits)
    ]
    return table(rows)


def scores_by_id(scores: pa.Table, column="model_score") -> dict:
    return dict(zip(scores["example_id"].to_pylist(), scores[column].to_pylist(), strict=True))


# e3 small: mean 3, population std sqrt(8/3) = 1.632993 -> 3 / (1 + 0.2 * 1.632993) = 2.261422
E3_SMALL = 3 / (1 + 0.2 * math.sqrt(8 / 3))


# --- aggregate: hand-computed ---------------------------------------------------------


def test_hand_computed_sentence_and_model_scores():
    scores, weights = aggregate(hand_table(), alpha=0.2, authors_softmax=False, weights=None)
    assert weights == pytest.approx({"small": 0.25, "big": 0.75})
    assert pytest.approx(2.261422, abs=1e-6) == E3_SMALL
    small = scores_by_id(scores, SENTENCE_PREFIX + "small")
    big = scores_by_id(scores, SENTENCE_PREFIX + "big")
    assert small == pytest.approx({"e1": 5.0, "e2": 1.0, "e3": E3_SMALL, "e4": 2.0})
    assert big == pytest.approx({"e1": 4.0, "e2": 5.0, "e3": 3.0, "e4": 2.0})
    # e1: .25*5 + .75*4 = 4.25; e2: .25*1 + .75*5 = 4.0; e3: .25*2.261422 + .75*3 = 2.815356; e4: 2
    assert scores_by_id(scores) == pytest.approx({"e1": 4.25, "e2": 4.0, "e3": 0.25 * E3_SMALL + 2.25, "e4": 2.0})


def test_output_is_ranked_best_first():
    scores, _ = aggregate(hand_table(), alpha=0.2, authors_softmax=False, weights=None)
    assert scores["example_id"].to_pylist() == ["e1", "e2", "e3", "e4"]
    assert scores["rank"].to_pylist() == [1, 2, 3, 4]
    assert scores.column_names == [
        "example_id",
        SENTENCE_PREFIX + "small",
        SENTENCE_PREFIX + "big",
        "model_score",
        "rank",
    ]
    model = scores["model_score"].to_pylist()
    assert model == sorted(model, reverse=True)


def test_explicit_weights_change_the_result_and_ties_break_by_id():
    # small:big = 3:1 -> 0.75/0.25. e1: .75*5+.25*4 = 4.75; e3: .75*2.261422+.25*3 = 2.446066;
    # e2: .75*1+.25*5 = 2.0 and e4: .75*2+.25*2 = 2.0 tie -> e2 before e4 by id
    scores, weights = aggregate(hand_table(), alpha=0.2, authors_softmax=False, weights={"small": 3, "big": 1})
    assert weights == pytest.approx({"small": 0.75, "big": 0.25})
    assert scores_by_id(scores) == pytest.approx({"e1": 4.75, "e2": 2.0, "e3": 0.75 * E3_SMALL + 0.75, "e4": 2.0})
    assert scores["example_id"].to_pylist() == ["e1", "e3", "e2", "e4"]
    assert scores["rank"].to_pylist() == [1, 2, 3, 4]


def test_explicit_weights_naming_wrong_raters_rejected():
    with pytest.raises(ValueError, match="weights must name exactly the raters"):
        aggregate(hand_table(), alpha=0.2, authors_softmax=False, weights={"small": 1.0, "huge": 1.0})


def test_expected_rating_as_token_score_by_hand():
    # A one-hot rating's expected rating is its digit, as its paper score is: the same scores.
    paper, _ = aggregate(hand_table(), alpha=0.2, authors_softmax=False, weights=None)
    expected, _ = aggregate(hand_table(), alpha=0.2, authors_softmax=False, weights=None, token_score="expected")
    assert expected.equals(paper)
    # A spread rating tells them apart: P' = (0.5, 0, 0, 0, 0.5) has expected rating
    # 1*0.5 + 5*0.5 = 3, while the paper's score is 1 * (0 + 0.5 + 0.5 + 0.5 + 0) / 4 = 0.375
    # (the argmax tie goes to the lower rating).
    rows = [rating_row("e", model, p, [0.4, 0, 0, 0, 0.4]) for model in PARAMS for p in range(3)]
    by_paper, _ = aggregate(table(rows), alpha=0.2, authors_softmax=False, weights=None)
    by_expected, _ = aggregate(table(rows), alpha=0.2, authors_softmax=False, weights=None, token_score="expected")
    assert scores_by_id(by_paper) == pytest.approx({"e": 0.375})
    assert scores_by_id(by_expected) == pytest.approx({"e": 3.0})


def test_unknown_token_score_is_rejected():
    with pytest.raises(ValueError, match="token-level score must be one of"):
        aggregate(hand_table(), alpha=0.2, authors_softmax=False, weights=None, token_score="mean")


def test_alpha_zero_gives_plain_means():
    scores, _ = aggregate(hand_table(), alpha=0.0, authors_softmax=False, weights=None)
    # e3 small: mean of 5, 3, 1 = 3
    assert scores_by_id(scores, SENTENCE_PREFIX + "small")["e3"] == pytest.approx(3.0)


def test_ties_broken_by_example_id_whatever_the_row_order():
    rows = []
    for e in ["zz", "b", "a"]:  # "b" and "a" get identical ratings; "a" appears last
        digit = 5 if e != "zz" else 1
        for model in PARAMS:
            rows += [rating_row(e, model, p, one_hot(digit)) for p in range(3)]
    scores, _ = aggregate(table(rows), alpha=0.2, authors_softmax=False, weights=None)
    assert scores["example_id"].to_pylist() == ["a", "b", "zz"]
    assert scores["rank"].to_pylist() == [1, 2, 3]


# --- aggregate: against a direct computation -----------------------------------------


def direct_token(p, authors_softmax=False):
    p = np.asarray(p, dtype=float) / np.sum(p)
    if authors_softmax:
        p = np.exp(p) / np.exp(p).sum()
    b = int(np.argmax(p))
    return (b + 1) * np.abs(p - p[b]).sum() / (len(p) - 1)


def random_ratings(seed=0, n_examples=4, n_prompts=3, k=K):
    rng = np.random.default_rng(seed)
    probs = {
        (f"ex{e}", m, p): rng.dirichlet(np.full(k, 0.4)) * rng.uniform(0.2, 1.0)  # mass < 1
        for e in range(n_examples)
        for m in PARAMS
        for p in range(n_prompts)
    }
    keys = list(probs)
    order = rng.permutation(len(keys))  # rows in no particular order
    rows = [rating_row(*keys[i], probs[keys[i]], k=k) for i in order]
    return table(rows), probs


def direct_model_scores(probs, alpha, authors_softmax, weights):
    examples = sorted({e for e, _, _ in probs})
    prompts = sorted({p for _, _, p in probs})
    out = {}
    for e in examples:
        total = 0.0
        for m, w in weights.items():
            t = np.array([direct_token(probs[(e, m, p)], authors_softmax) for p in prompts])
            total += w * t.mean() / (1 + alpha * t.std())
        out[e] = total
    return out


@pytest.mark.parametrize("authors_softmax", [False, True])
def test_model_score_matches_direct_computation(authors_softmax):
    ratings, probs = random_ratings(seed=1)
    scores, _ = aggregate(ratings, alpha=0.2, authors_softmax=authors_softmax, weights=None)
    expected = direct_model_scores(probs, 0.2, authors_softmax, {"small": 0.25, "big": 0.75})
    assert scores_by_id(scores) == pytest.approx(expected)


def test_k_independent_of_prompt_count_in_aggregate():
    ratings, probs = random_ratings(seed=2, n_examples=5, n_prompts=2, k=7)
    scores, _ = aggregate(ratings, alpha=0.5, authors_softmax=False, weights=None)
    expected = direct_model_scores(probs, 0.5, False, {"small": 0.25, "big": 0.75})
    assert scores_by_id(scores) == pytest.approx(expected)


def test_authors_softmax_changes_the_scores():
    ratings, _ = random_ratings(seed=3)
    plain, _ = aggregate(ratings, alpha=0.2, authors_softmax=False, weights=None)
    soft, _ = aggregate(ratings, alpha=0.2, authors_softmax=True, weights=None)
    a, b = scores_by_id(plain), scores_by_id(soft)
    assert all(b[e] < a[e] for e in a)  # the extra softmax flattens every distribution


# --- aggregate: errors ------------------------------------------------------------------


def test_missing_rating_raises():
    rows = hand_table().to_pylist()
    del rows[4]  # e1, big, prompt 1
    with pytest.raises(RatingsError, match=r"rater 'big' has 1 missing \(example, prompt\) ratings"):
        aggregate(table(rows), alpha=0.2, authors_softmax=False, weights=None)


def test_rater_missing_a_whole_example_raises():
    rows = [r for r in hand_table().to_pylist() if not (r["example_id"] == "e3" and r["model"] == "small")]
    with pytest.raises(RatingsError, match=r"rater 'small' has 3 missing"):
        aggregate(table(rows), alpha=0.2, authors_softmax=False, weights=None)


def test_empty_ratings_raise():
    with pytest.raises(RatingsError, match="empty"):
        aggregate(table([]), alpha=0.2, authors_softmax=False, weights=None)


def test_mixed_k_or_prompt_versions_raise():
    rows = hand_table().to_pylist()
    rows.append(rating_row("e9", "small", 0, one_hot(2, k=3), k=3))
    with pytest.raises(RatingsError, match="mix different K or prompt versions"):
        aggregate(table(rows), alpha=0.2, authors_softmax=False, weights=None)
    rows = hand_table().to_pylist()
    rows[0]["prompt_version"] = "v2"
    with pytest.raises(RatingsError, match="mix different K or prompt versions"):
        aggregate(table(rows), alpha=0.2, authors_softmax=False, weights=None)


def test_example_without_digit_mass_ranks_last():
    rows = hand_table().to_pylist()
    rows[0]["probs"] = [0.0] * K  # e1, small, prompt 0: no mass on any digit
    scores, _ = aggregate(table(rows), alpha=0.2, authors_softmax=False, weights=None)
    assert scores["example_id"].to_pylist() == ["e2", "e3", "e4", "e1"]
    assert math.isnan(scores_by_id(scores)["e1"])
    assert scores["rank"].to_pylist() == [1, 2, 3, 4]


# --- selection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "ratio", "expected"),
    [
        (999, 0.2, 200),  # 199.8 -> 200
        (1000, 0.2, 200),
        (3, 0.2, 1),  # 0.6 -> 1
        (10, 0.001, 1),  # 0.01 rounds to 0, but at least one is kept
        (1, 0.2, 1),
        (0, 0.2, 0),  # nothing to keep
        (7, 1.0, 7),
        (10, 0.3, 3),
        (10, 0.94, 9),  # 9.4 -> 9
    ],
)
def test_n_to_keep(n, ratio, expected):
    assert n_to_keep(n, ratio) == expected


@pytest.mark.parametrize("ratio", [0.0, -0.2, 1.01, 5.0])
def test_n_to_keep_rejects_ratio_outside_zero_one(ratio):
    with pytest.raises(ValueError, match=r"ratio must be in \(0, 1\]"):
        n_to_keep(10, ratio)


def test_n_to_keep_rejects_bad_ratio_even_with_no_examples():
    with pytest.raises(ValueError, match="ratio"):
        n_to_keep(0, 0.0)


def test_select_top_partitions_ids_best_first():
    scores, _ = aggregate(hand_table(), alpha=0.2, authors_softmax=False, weights=None)
    kept, left = select_top(scores, 0.5)  # 0.5 * 4 = 2
    assert kept == ["e1", "e2"]
    assert left == ["e3", "e4"]


def test_select_top_sorts_by_rank_not_row_order():
    scores, _ = aggregate(hand_table(), alpha=0.2, authors_softmax=False, weights=None)
    shuffled = scores.take([2, 0, 3, 1])
    kept, left = select_top(shuffled, 0.2)  # 0.8 -> 1
    assert kept == ["e1"]
    assert left == ["e2", "e3", "e4"]


def test_select_top_random_partition():
    ratings, _ = random_ratings(seed=4, n_examples=23)
    scores, _ = aggregate(ratings, alpha=0.2, authors_softmax=False, weights=None)
    kept, left = select_top(scores, 0.2)  # 4.6 -> 5
    assert len(kept) == 5 and len(left) == 18
    assert set(kept) | set(left) == {f"ex{i}" for i in range(23)}
    assert not set(kept) & set(left)
    by_id = scores_by_id(scores)
    assert min(by_id[e] for e in kept) >= max(by_id[e] for e in left)
    assert kept + left == scores.sort_by("rank")["example_id"].to_pylist()


def example(example_id: str, row: int) -> Example:
    return Example(example_id, f"Say {row}.", "", str(row), "in.json", row, "alpaca", {})


def selection_files(tmp_path, examples, allow_unscored=False):
    scores, _ = aggregate(hand_table(), alpha=0.2, authors_softmax=False, weights=None)
    paths = [tmp_path / "sel.json", tmp_path / "selected_ids.txt", tmp_path / "excluded_ids.txt"]
    return write_selection(scores, iter(examples), 0.5, *paths, allow_unscored=allow_unscored), paths


def test_write_selection_keeps_input_order_and_writes_both_id_lists_best_first(tmp_path):
    examples = [example(e, row) for row, e in enumerate(["e4", "e2", "e3", "e1"])]
    selection, (out, kept_ids, left_ids) = selection_files(tmp_path, examples)
    assert json.loads(out.read_text()) == [
        {"instruction": "Say 1.", "input": "", "output": "1"},
        {"instruction": "Say 3.", "input": "", "output": "3"},
    ]
    assert kept_ids.read_text() == "e1\ne2\n" and left_ids.read_text() == "e3\ne4\n"
    assert selection.kept == ["e1", "e2"] and selection.unscored == 0
    assert selection.lowest_kept_score == selection.scores[1] >= selection.scores[2]


def test_write_selection_refuses_scored_examples_missing_from_the_inputs(tmp_path):
    with pytest.raises(InputError, match=r"1 scored examples \(e.g. e2\) are not in the inputs"):
        selection_files(tmp_path, [example(e, row) for row, e in enumerate(["e1", "e3", "e4"])])
    assert not list(tmp_path.iterdir())  # nothing written


def test_write_selection_refuses_unscored_examples_unless_allowed(tmp_path):
    examples = [example(e, row) for row, e in enumerate(["e1", "e2", "new", "e3", "e4"])]
    with pytest.raises(InputError, match=r"1 of 5 input examples were never scored \(e.g. row 2 of in.json\)"):
        selection_files(tmp_path, examples)
    assert not list(tmp_path.iterdir())
    selection, (out, _, _) = selection_files(tmp_path, examples, allow_unscored=True)
    assert selection.unscored == 1 and len(json.loads(out.read_text())) == 2
