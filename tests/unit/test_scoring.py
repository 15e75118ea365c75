"""The SelectIT uncertainty math: token, sentence and model level (selectit/scoring.py)."""

import math

import numpy as np
import pytest

from selectit.scoring.formulas import (
    model_scores,
    model_weights,
    normalise_digit_probs,
    sentence_scores,
    token_scores,
)


def reference_token_score(p) -> float:
    """S_token written out directly from the paper's formula, one distribution at a time."""
    p = np.asarray(p, dtype=float)
    p = p / p.sum()
    k = len(p)
    base = int(np.argmax(p)) + 1  # first maximum -> the lower digit on ties
    return base * sum(abs(p[i] - p[base - 1]) for i in range(k)) / (k - 1)


# --- token level: hand-computed values ---------------------------------------


def test_token_score_symmetric_peak_on_middle_digit():
    # S_base = 3; sum|P' - 0.4| = 0.3+0.2+0+0.2+0.3 = 1.0; S = 3 * 1.0 / 4 = 0.75
    assert token_scores(np.array([0.1, 0.2, 0.4, 0.2, 0.1])) == pytest.approx(0.75)


def test_token_score_one_hot_on_top_digit_is_k():
    # S_base = 5; sum|P' - 1| = 4 * 1; S = 5 * 4 / 4 = 5
    assert token_scores(np.array([0.0, 0.0, 0.0, 0.0, 1.0])) == pytest.approx(5.0)


def test_token_score_one_hot_on_digit_two():
    # S_base = 2; sum|P' - 1| = 4; S = 2 * 4 / 4 = 2
    assert token_scores(np.array([0.0, 1.0, 0.0, 0.0, 0.0])) == pytest.approx(2.0)


def test_token_score_flat_distribution_is_zero():
    # every |P'_i - P'_base| is 0
    assert token_scores(np.full(5, 0.2)) == pytest.approx(0.0)


def test_token_score_k3_hand_value():
    # K=3, P=[0.2,0.5,0.3]: S_base = 2; sum|P'-0.5| = 0.3+0+0.2 = 0.5; S = 2 * 0.5 / 2 = 0.5
    assert token_scores(np.array([0.2, 0.5, 0.3])) == pytest.approx(0.5)


def test_ties_in_argmax_go_to_lower_digit():
    # tie between digits 1 and 2 -> S_base = 1; sum = 0+0+0.1+0.2+0.2 = 0.5; S = 1 * 0.5 / 4 = 0.125
    # (had the tie gone to digit 2 the score would be 0.25)
    assert token_scores(np.array([0.3, 0.3, 0.2, 0.1, 0.1])) == pytest.approx(0.125)


def test_tie_between_non_adjacent_digits_goes_to_lower():
    # digits 2 and 4 tie at 0.4: S_base = 2; sum = 0.3+0+0.35+0+0.35 = 1.0; S = 2 * 1.0 / 4 = 0.5
    # (digit 4 would give 4 * 1.0 / 4 = 1.0)
    assert token_scores(np.array([0.1, 0.4, 0.05, 0.4, 0.05])) == pytest.approx(0.5)


# --- normalisation -------------------------------------------------------------


def test_normalise_divides_by_digit_mass():
    # [0.1, 0.3] has mass 0.4 -> [0.25, 0.75]
    np.testing.assert_allclose(normalise_digit_probs(np.array([0.1, 0.3])), [0.25, 0.75])


def test_unnormalised_probs_give_same_score_as_normalised():
    p = np.array([0.1, 0.2, 0.4, 0.2, 0.1])
    for mass in (0.37, 0.01, 1e-6):
        assert token_scores(p * mass) == pytest.approx(0.75)


def test_unnormalised_batch_matches_normalised_batch():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=50)
    masses = rng.uniform(0.01, 1.0, size=(50, 1))
    np.testing.assert_allclose(token_scores(p * masses), token_scores(p))


def test_zero_mass_row_is_nan_and_leaves_others_alone():
    probs = np.array([[0.0, 0.0, 0.0, 0.0, 0.0], [0.1, 0.2, 0.4, 0.2, 0.1]])
    scores = token_scores(probs)
    assert np.isnan(scores[0])
    assert scores[1] == pytest.approx(0.75)


def test_k_below_two_is_rejected():
    with pytest.raises(ValueError, match="K >= 2"):
        token_scores(np.array([[1.0]]))


# --- the authors' extra softmax --------------------------------------------------


def test_authors_softmax_hand_value():
    # P' = [0.1,0.2,0.4,0.2,0.1]; P'' = exp(P') / sum exp(P'), peak still digit 3;
    # S = 3 * (2*(e^.4 - e^.1) + 2*(e^.4 - e^.2)) / Z / 4, Z = 2e^.1 + 2e^.2 + e^.4  (~0.16039)
    e1, e2, e4 = math.exp(0.1), math.exp(0.2), math.exp(0.4)
    z = 2 * e1 + 2 * e2 + e4
    expected = 3 * (2 * (e4 - e1) + 2 * (e4 - e2)) / z / 4
    assert expected == pytest.approx(0.16039, abs=1e-5)
    p = np.array([0.1, 0.2, 0.4, 0.2, 0.1])
    assert token_scores(p, authors_softmax=True) == pytest.approx(expected)


def test_authors_softmax_normalises_and_flattens():
    p = np.array([0.05, 0.05, 0.1, 0.2, 0.6])
    soft = normalise_digit_probs(p, authors_softmax=True)
    assert soft.sum() == pytest.approx(1.0)
    assert soft.max() < 0.6  # a softmax of probabilities is flatter
    assert token_scores(p, authors_softmax=True) < token_scores(p)


def test_authors_softmax_of_one_hot():
    # P'' = [1,1,1,1,e] / (4 + e); S = 5 * 4 * (e - 1) / (4 + e) / 4 = 5 (e - 1) / (4 + e)
    e = math.e
    expected = 5 * (e - 1) / (4 + e)
    assert token_scores(np.array([0, 0, 0, 0, 1.0]), authors_softmax=True) == pytest.approx(expected)


# --- token level: properties -----------------------------------------------------


def test_matches_direct_formula_on_random_distributions():
    rng = np.random.default_rng(1)
    for k in (2, 3, 5, 9):
        p = rng.dirichlet(np.ones(k), size=40)
        expected = [reference_token_score(row) for row in p]
        np.testing.assert_allclose(token_scores(p), expected, rtol=1e-12)


def test_closed_form_b_times_k_peak_minus_one():
    # all |P'_i - P'_b| = P'_b - P'_i, so the sum is K * P'_b - 1 and S = b (K P'_b - 1) / (K - 1)
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.full(5, 0.5), size=100)
    b = p.argmax(axis=1) + 1
    expected = b * (5 * p.max(axis=1) - 1) / 4
    np.testing.assert_allclose(token_scores(p), expected)


def test_confident_scores_higher_than_flatter_with_same_argmax():
    rng = np.random.default_rng(3)
    for _ in range(200):
        k = int(rng.integers(2, 10))
        p = rng.dirichlet(np.ones(k))
        t = rng.uniform(0.05, 0.95)
        flatter = (1 - t) * p + t / k  # mixing towards uniform keeps the argmax
        sharper = (1 - t) * p + t * np.eye(k)[p.argmax()]
        assert flatter.argmax() == p.argmax() == sharper.argmax()
        assert token_scores(p) > token_scores(flatter)
        assert token_scores(sharper) > token_scores(p)


def test_token_scores_bounded_by_zero_and_k():
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.full(7, 0.3), size=500)
    s = token_scores(p)
    assert (s >= 0).all() and (s <= 7).all()


# --- shapes: K independent of the number of prompts ---------------------------


@pytest.mark.parametrize(("k", "n_prompts"), [(7, 3), (3, 6), (5, 5), (2, 1)])
def test_k_and_prompt_count_are_independent(k, n_prompts):
    rng = np.random.default_rng(k * 10 + n_prompts)
    probs = rng.dirichlet(np.ones(k), size=(4, n_prompts))  # (n_examples, n_prompts, K)
    token = token_scores(probs)
    assert token.shape == (4, n_prompts)
    for e in range(4):
        for q in range(n_prompts):
            assert token[e, q] == pytest.approx(reference_token_score(probs[e, q]))
    sent = sentence_scores(token, alpha=0.2)
    assert sent.shape == (4,)
    expected = token.mean(axis=1) / (1 + 0.2 * token.std(axis=1))
    np.testing.assert_allclose(sent, expected)


# --- sentence level ---------------------------------------------------------------


def test_sentence_score_hand_value_uses_population_std():
    # [1, 3]: mean 2, population std 1 -> 2 / (1 + 0.5 * 1) = 4/3 (sample std would give ~1.1716)
    assert sentence_scores(np.array([1.0, 3.0]), alpha=0.5) == pytest.approx(4 / 3)


def test_sentence_score_three_prompts_hand_value():
    # [1,2,3]: mean 2, std sqrt(2/3) = 0.81650 -> 2 / (1 + 0.2 * 0.81650) = 1.71924
    assert sentence_scores(np.array([1.0, 2.0, 3.0]), alpha=0.2) == pytest.approx(1.71924, abs=1e-5)


def test_alpha_zero_is_plain_mean():
    rng = np.random.default_rng(5)
    s = rng.uniform(0, 5, size=(20, 4))
    np.testing.assert_allclose(sentence_scores(s, alpha=0.0), s.mean(axis=1))


def test_agreeing_prompts_give_the_mean():
    assert sentence_scores(np.array([2.5, 2.5, 2.5]), alpha=10.0) == pytest.approx(2.5)


def test_more_prompt_disagreement_lowers_sentence_score():
    # same mean (2), growing spread
    rows = np.array([[2.0, 2.0, 2.0], [1.5, 2.0, 2.5], [1.0, 2.0, 3.0], [0.0, 2.0, 4.0]])
    s = sentence_scores(rows, alpha=0.2)
    assert (np.diff(s) < 0).all()


def test_larger_alpha_lowers_score_when_prompts_disagree():
    row = np.array([1.0, 2.0, 4.0])
    assert sentence_scores(row, 0.1) > sentence_scores(row, 0.2) > sentence_scores(row, 1.0)


def test_negative_alpha_rejected():
    with pytest.raises(ValueError, match="alpha"):
        sentence_scores(np.array([1.0, 2.0]), alpha=-0.1)


# --- model level ----------------------------------------------------------------


def test_weights_from_parameter_counts():
    # 100 / 400 = 0.25, 300 / 400 = 0.75
    assert model_weights({"small": 100, "big": 300}) == pytest.approx({"small": 0.25, "big": 0.75})


@pytest.mark.parametrize("n_raters", [1, 2, 3, 7])
def test_weights_sum_to_one_for_any_number_of_raters(n_raters):
    rng = np.random.default_rng(n_raters)
    counts = {f"m{i}": float(rng.integers(1, 10**9)) for i in range(n_raters)}
    w = model_weights(counts)
    assert set(w) == set(counts)
    assert sum(w.values()) == pytest.approx(1.0)
    total = sum(counts.values())
    for name, c in counts.items():
        assert w[name] == pytest.approx(c / total)


def test_explicit_weights_are_normalised_and_override_counts():
    # 1 / (1 + 3) = 0.25, 3 / 4 = 0.75, whatever the parameter counts
    w = model_weights({"small": 900, "big": 100}, {"small": 1, "big": 3})
    assert w == pytest.approx({"small": 0.25, "big": 0.75})


@pytest.mark.parametrize(
    "explicit",
    [{"small": 1.0}, {"small": 1.0, "big": 1.0, "other": 1.0}, {"small": 1.0, "huge": 1.0}],
)
def test_explicit_weights_naming_wrong_raters_rejected(explicit):
    with pytest.raises(ValueError, match="weights must name exactly the raters"):
        model_weights({"small": 100, "big": 300}, explicit)


@pytest.mark.parametrize("bad", [{"a": -1.0, "b": 2.0}, {"a": 0.0, "b": 0.0}, {"a": float("nan"), "b": 1.0}])
def test_invalid_weight_values_rejected(bad):
    with pytest.raises(ValueError, match="weights"):
        model_weights({"a": 1, "b": 1}, bad)


def test_no_raters_rejected():
    with pytest.raises(ValueError, match="at least one rater"):
        model_weights({})


def test_model_scores_weighted_sum():
    # example 0: 0.25*4 + 0.75*2 = 2.5; example 1: 0.25*0 + 0.75*4 = 3.0
    sent = {"small": np.array([4.0, 0.0]), "big": np.array([2.0, 4.0])}
    out = model_scores(sent, {"small": 0.25, "big": 0.75})
    np.testing.assert_allclose(out, [2.5, 3.0])


def test_model_scores_weights_must_match_raters():
    with pytest.raises(ValueError, match="do not match"):
        model_scores({"a": np.array([1.0])}, {"b": 1.0})


def test_single_rater_model_score_is_its_sentence_score():
    sent = np.array([1.2, 3.4, 0.5])
    w = model_weights({"only": 12345})
    np.testing.assert_allclose(model_scores({"only": sent}, w), sent)
