"""The selectors beside SelectIT: their rankings on a tiny pool with known scores, the pairwise
model of `learned` on synthetic features, its features, and the bad inputs that stop it."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import yaml
from helpers import ROOT

from selectit.config import load_params
from selectit.core.errors import InputError, ParamsError
from selectit.core.records import Example
from selectit.finetune.variants import variant_examples
from selectit.scoring.features import LENGTH_FEATURES, length_columns, only, rating_features, with_columns
from selectit.scoring.pairwise import PairData, PairwiseModel, fit_pairwise
from selectit.scoring.tables import RATINGS_SCHEMA
from selectit.selection.methods import ifd_ranking, method_ranking, rank_by_score
from selectit.selection.output import write_selection


def _example(name: str, output: str) -> Example:
    return Example(name, f"Task {name}.", "", output, "s.json", 0, "alpaca", {})


# Four examples: SelectIT ranks a > b > c > d; the responses' lengths rank d > c > b > a.
POOL = [_example("a", "x"), _example("b", "xx"), _example("c", "xxx"), _example("d", "xxxx")]
SELECTIT_RANKED = ["a", "b", "c", "d"]


def test_each_method_ranks_the_pool_by_its_own_score():
    assert method_ranking("selectit", selectit_ranked=SELECTIT_RANKED) == ["a", "b", "c", "d"]
    assert method_ranking("length", selectit_ranked=SELECTIT_RANKED, pool=POOL) == ["d", "c", "b", "a"]
    learned = {"a": 0.1, "b": 2.0, "c": -1.0, "d": 0.5}
    assert method_ranking("learned", selectit_ranked=SELECTIT_RANKED, scores=learned) == ["b", "d", "a", "c"]
    # IFD: the highest below 1 first (c 0.9, a 0.5), then at or above 1 nearest 1 first (b 1.0, d 1.7).
    ifd = {"a": 0.5, "b": 1.0, "c": 0.9, "d": 1.7}
    assert method_ranking("ifd", selectit_ranked=SELECTIT_RANKED, scores=ifd) == ["c", "a", "b", "d"]


def test_a_missing_score_ranks_last_and_ties_go_by_id():
    assert rank_by_score({"b": 1.0, "a": 1.0, "c": float("nan"), "d": 2.0}) == ["d", "a", "b", "c"]
    assert ifd_ranking({"x": float("nan"), "y": 1.2, "z": 0.3}) == ["z", "y", "x"]
    # An id the selector has no score for (an IFD-unrated example) is ranked, last.
    assert method_ranking("ifd", selectit_ranked=["p", "q"], scores={"q": 0.4}) == ["q", "p"]


def test_the_selection_keeps_the_top_of_another_methods_ranking(tmp_path):
    scores = pa.table({"example_id": SELECTIT_RANKED, "model_score": [4.0, 3.0, 2.0, 1.0], "rank": [1, 2, 3, 4]})
    ranking = method_ranking("length", selectit_ranked=SELECTIT_RANKED, pool=POOL)
    lengths = {e.id: float(len(e.output)) for e in POOL}
    selection = write_selection(
        scores,
        POOL,
        0.5,
        tmp_path / "sel.json",
        tmp_path / "kept.txt",
        tmp_path / "left.txt",
        allow_unscored=False,
        ranking=ranking,
        ranking_scores=lengths,
    )
    assert selection.kept == ["d", "c"] and selection.left_out == ["b", "a"]
    assert selection.lowest_kept_score == 3.0
    assert [row["output"] for row in json.loads((tmp_path / "sel.json").read_text())] == ["xxx", "xxxx"]


def test_the_model_variants_train_on_their_selectors_top_share():
    scores = {"learned": {"a": 0.0, "b": 3.0, "c": 2.0, "d": 1.0}, "ifd": {"a": 0.2, "b": 1.5, "c": 0.1, "d": 0.8}}
    chosen = {
        name: {e.id for e in variant_examples(name, POOL, SELECTIT_RANKED, ["a", "b"], 0, scores).examples}
        for name in ("learned", "ifd", "length")
    }
    assert chosen == {"learned": {"b", "c"}, "ifd": {"d", "a"}, "length": {"d", "c"}}
    with pytest.raises(InputError, match="no ifd scores"):
        variant_examples("ifd", POOL, SELECTIT_RANKED, ["a"], 0, None)


def _synthetic_pairs(n: int, seed: int = 0) -> PairData:
    """Three features; the preferred response is the one with the larger second feature."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    a_wins = a[:, 1] > b[:, 1]
    preferred, other = np.where(a_wins[:, None], a, b), np.where(a_wins[:, None], b, a)
    return PairData(
        names=["noise_1", "decides", "noise_2"],
        preferred=preferred,
        other=other,
        groups=[f"instruction {i}" for i in range(n)],
        pair_ids=[f"p{i}" for i in range(n)],
        preferred_ids=[f"p{i}-win" for i in range(n)],
        other_ids=[f"p{i}-lose" for i in range(n)],
    )


def test_the_pairwise_model_finds_the_feature_that_decides(tmp_path):
    data = _synthetic_pairs(120)
    model = fit_pairwise(data, folds=5, seed=0)
    assert model.cv_agreement >= 0.97  # out of fold: each pair scored by a model that never saw it
    coefficients = np.abs(model.coefficients)
    assert np.argmax(coefficients) == 1 and coefficients[1] > 5 * coefficients[[0, 2]].max()
    # The out-of-fold scores order every pair as the outcomes say.
    wins = [
        model.cv_scores[w] > model.cv_scores[lose] for w, lose in zip(data.preferred_ids, data.other_ids, strict=True)
    ]
    assert np.mean(wins) == model.cv_agreement
    # Saved as JSON (no pickle) and read back to the same scores.
    model.save(tmp_path / "model.json")
    again = PairwiseModel.load(tmp_path / "model.json")
    x = np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    assert np.allclose(again.score(x), model.score(x)) and again.score(x)[0] > again.score(x)[1]
    assert set(json.loads((tmp_path / "model.json").read_text())) >= {"names", "means", "scales", "coefficients"}


def test_fewer_pairs_than_folds_and_a_constant_feature_are_one_line_naming_the_key():
    with pytest.raises(InputError, match=r"select.learned_pairs: 4 usable pair\(s\).*5 cross-validation folds"):
        fit_pairwise(_synthetic_pairs(4), folds=5, seed=0)
    data = _synthetic_pairs(20)
    data.preferred[:, 2] = data.other[:, 2] = 0.1 + 0.2  # the same up to rounding counts as constant
    data.other[0, 2] = 0.3
    with pytest.raises(InputError, match=r"select.learned_pairs: feature\(s\) \['noise_2'\] are constant"):
        fit_pairwise(data, folds=5, seed=0)


def _ratings(rows) -> pa.Table:
    """Rows of (example, rater, prompt, probs over K=3 digits)."""
    columns = {name: [] for name in RATINGS_SCHEMA.names}
    for example, rater, prompt, probs in rows:
        values = {
            "example_id": example,
            "model": rater,
            "model_params": 10,
            "prompt_id": prompt,
            "prompt_version": "v",
            "template": "plain",
            "k": 3,
            "probs": probs,
            "mass": sum(probs),
            "top_is_digit": True,
            "token_score": 0.0,
            "n_tokens": 5,
            "truncated": False,
        }
        for name in RATINGS_SCHEMA.names:
            columns[name].append(values[name])
    return pa.table(columns, schema=RATINGS_SCHEMA)


def test_rating_features_of_hand_made_ratings():
    ratings = _ratings(
        [
            ("e1", "r", 0, [0.0, 0.0, 0.5]),  # all mass on 3: expected 3
            ("e1", "r", 1, [0.5, 0.0, 0.0]),  # all on 1: expected 1
            ("e2", "r", 0, [0.0, 0.4, 0.0]),
            ("e2", "r", 1, [0.0, 0.4, 0.0]),
        ]
    )
    table = rating_features(ratings, alpha=0.2, authors_softmax=False)
    assert table.names == ["token.r.0", "token.r.1", "sentence.r", "expected.r", "digit_mass.r"]
    # e1: token scores 3 and 1 (all mass on one digit), sentence mean 2 / (1 + 0.2 * std 1).
    assert table.rows(["e1"])[0].tolist() == pytest.approx([3.0, 1.0, 2.0 / 1.2, 2.0, 0.5])
    assert table.rows(["e2"])[0].tolist() == pytest.approx([2.0, 2.0, 2.0, 2.0, 0.4])
    table = with_columns(table, length_columns({"e1": 0, "e2": 3}, {"e1": 1, "e2": 7}))
    assert only(table, [LENGTH_FEATURES[1]]).rows(["e1", "e2"])[:, 0].tolist() == pytest.approx([np.log(2), np.log(8)])
    assert only(table, ["expected.r"]).values.shape == (2, 1)


def test_learned_without_a_pairs_file_is_one_line_naming_the_key(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["select"].update({"method": "learned", "learned_pairs": None})
    raw["hygiene"]["decontaminate"] = False
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match="select.learned_pairs: the `learned` selector is fitted on judged pairs"):
        load_params(path)
    raw["select"]["learned_pairs"] = "missing.jsonl"  # relative to params.yaml
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=rf"select.learned_pairs: {tmp_path / 'missing.jsonl'} not found; name"):
        load_params(path)
    raw["select"]["method"] = "lengthy"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=r"select.method: expected one of \['selectit', 'length', 'ifd', 'learned'\]"):
        load_params(path)
