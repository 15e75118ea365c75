"""Bootstrap intervals and the variant comparison (selectit/evaluation/stats.py, compare.py)."""

from __future__ import annotations

import itertools
import json
import random
import re

import numpy as np
import pytest
from helpers import ROOT

from selectit.config import load_params
from selectit.core.errors import InputError
from selectit.evaluation import compare, stats
from selectit.evaluation.compare import BETTER, NO_CLEAR_DIFFERENCE, WORSE, Comparison, MetricSpec, metric_key, verdict
from selectit.evaluation.stats import Interval

# The project's settings, as the compare stage passes them; a test overrides one by name.
EVALUATE = load_params(ROOT / "params.yaml").evaluate
BOOTSTRAP = {"resamples": EVALUATE.bootstrap_resamples, "level": EVALUATE.confidence, "seed": EVALUATE.seed}


def bootstrap_ci(scores, **settings) -> Interval:
    return stats.bootstrap_ci(scores, **BOOTSTRAP | settings)


def paired_bootstrap(a, b, **settings) -> Interval:
    return stats.paired_bootstrap(a, b, **BOOTSTRAP | settings)


def compare_variants(results, metrics, **settings) -> Comparison:
    return compare.compare_variants(results, metrics, **{"reference": EVALUATE.reference} | BOOTSTRAP | settings)


NLL = MetricSpec("heldout_nll", higher_is_better=False, label="held-out NLL ↓")
ACC = MetricSpec("mmlu/acc", higher_is_better=True, label="MMLU acc ↑")


def exact_percentile_interval(values: list[float], level: float) -> tuple[float, float]:
    """The percentile interval of the exact bootstrap distribution, by enumerating all n^n resamples.

    It also asserts that both tails sit well inside a jump of the CDF, so that a
    Monte Carlo estimate with many resamples must land exactly on these atoms.
    """
    n = len(values)
    means = np.array([sum(values[i] for i in pick) / n for pick in itertools.product(range(n), repeat=n)])
    atoms = np.unique(means)
    cdf = np.array([(means <= atom).mean() for atom in atoms])
    bounds = []
    for q in ((1 - level) / 2, 1 - (1 - level) / 2):
        j = int(np.searchsorted(cdf, q))  # first atom whose CDF reaches q
        below = cdf[j - 1] if j else 0.0
        assert min(q - below, cdf[j] - q) > 0.005, "pick values whose tails are not on a CDF step"
        bounds.append(float(atoms[j]))
    return bounds[0], bounds[1]


# --- bootstrap_ci --------------------------------------------------------------


def test_bootstrap_matches_the_enumerated_exact_distribution():
    values = [0.0, 1.0, 3.0, 10.0]
    # By hand: 4^4 = 256 equally likely resamples. Low tail: P(sum 0) = 1/256,
    # P(sum 1) = 4/256, P(sum 2: two 0s, two 1s) = 6/256, so the CDF goes
    # 5/256 = 0.0195 -> 11/256 = 0.043 at mean 0.5. High tail: P(sum 40) = 1/256,
    # P(sum 33) = 4/256, P(sum 31: three 10s, one 1) = 4/256, so P(mean >= 7.75)
    # = 9/256 = 0.035 and P(mean > 7.75) = 0.0195: the 97.5% point is 7.75.
    assert exact_percentile_interval(values, 0.95) == (0.5, 7.75)
    for seed in (0, 1):
        interval = bootstrap_ci(values, resamples=200_000, seed=seed)
        assert interval.estimate == pytest.approx(3.5)
        assert interval.low == pytest.approx(0.5, abs=1e-9)
        assert interval.high == pytest.approx(7.75, abs=1e-9)


def test_bootstrap_level_narrows_the_interval():
    values = [0.0, 1.0, 3.0, 10.0, 2.0, 5.0]
    wide = bootstrap_ci(values, level=0.95, seed=3)
    narrow = bootstrap_ci(values, level=0.5, seed=3)
    assert wide.low < narrow.low <= narrow.high < wide.high


def test_constant_scores_give_a_zero_width_interval():
    interval = bootstrap_ci([0.25] * 40, resamples=500)
    assert interval.low == interval.high
    assert interval.estimate == pytest.approx(0.25)
    assert interval.low == pytest.approx(0.25)


def test_one_question_gives_a_zero_width_interval():
    assert bootstrap_ci([2.5]) == Interval(2.5, 2.5, 2.5)


def test_bootstrap_is_deterministic_under_the_seed():
    values = np.random.default_rng(7).normal(size=300)
    assert bootstrap_ci(values, seed=11) == bootstrap_ci(list(values), seed=11)
    other = bootstrap_ci(values, seed=12)
    assert other.estimate == bootstrap_ci(values, seed=11).estimate
    assert (other.low, other.high) != (bootstrap_ci(values, seed=11).low, bootstrap_ci(values, seed=11).high)


def test_interval_to_dict():
    assert Interval(1.0, 0.5, 1.5).to_dict() == {"estimate": 1.0, "low": 0.5, "high": 1.5}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scores": []}, "no scores"),
        ({"scores": [1.0, float("nan")]}, "1 of 2 scores are NaN"),
        ({"scores": [[1.0, 2.0]]}, "flat list"),
        ({"scores": [1.0, 2.0], "resamples": 0}, "resamples"),
        ({"scores": [1.0, 2.0], "level": 1.0}, "level"),
    ],
)
def test_bootstrap_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_ci(**kwargs)


# --- paired_bootstrap ----------------------------------------------------------


def test_paired_difference_of_identical_lists_is_exactly_zero():
    scores = list(np.random.default_rng(0).uniform(size=50))
    assert paired_bootstrap(scores, scores) == Interval(0.0, 0.0, 0.0)


def test_paired_difference_of_a_constant_shift_is_that_shift():
    b = [3, 1, 4, 1, 5, 9, 2, 6]
    a = [x + 2 for x in b]
    assert paired_bootstrap(a, b) == Interval(2.0, 2.0, 2.0)


def test_pairing_removes_the_spread_between_questions():
    # Question difficulty varies a lot, the improvement is small but consistent:
    # separate intervals overlap, the paired one clearly excludes 0.
    rng = np.random.default_rng(5)
    b = rng.normal(0.0, 5.0, size=200)
    a = b + 0.1 + rng.normal(0.0, 0.05, size=200)
    alone_a, alone_b = bootstrap_ci(a), bootstrap_ci(b)
    assert alone_a.low < alone_b.high
    paired = paired_bootstrap(a, b)
    assert paired.estimate == pytest.approx(float(np.mean(a - b)))
    assert 0.0 < paired.low < paired.estimate < paired.high < 0.2


def test_paired_bootstrap_is_deterministic_and_seeded():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=100), rng.normal(size=100)
    assert paired_bootstrap(a, b, seed=4) == paired_bootstrap(a, b, seed=4)
    assert paired_bootstrap(a, b, seed=4) != paired_bootstrap(a, b, seed=5)


def test_paired_bootstrap_needs_equal_lengths():
    with pytest.raises(ValueError, match=r"len\(a\) = 3, len\(b\) = 2"):
        paired_bootstrap([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="no scores"):
        paired_bootstrap([], [])


# --- compare_variants ----------------------------------------------------------


def question_ids(n: int) -> list[str]:
    return [f"q{i:03d}" for i in range(n)]


def sample_results(n: int = 60) -> dict:
    """selectit: lower NLL and higher accuracy than random; longest: about the same as random."""
    rng = np.random.default_rng(2)
    ids = question_ids(n)
    nll = rng.uniform(1.5, 3.0, size=n)
    correct = rng.integers(0, 2, size=n).astype(float)
    better_acc = correct.copy()
    better_acc[: n // 3] = 1.0
    return {
        "random": {"heldout_nll": (ids, list(nll)), "mmlu/acc": (ids, list(correct))},
        "selectit": {"heldout_nll": (ids, list(nll - 0.2)), "mmlu/acc": (ids, list(better_acc))},
        "longest": {"heldout_nll": (ids, list(nll + rng.normal(0, 0.3, size=n))), "mmlu/acc": (ids, list(correct))},
    }


def test_a_written_comparison_loads_as_it_was(tmp_path):
    comparison = compare_variants(sample_results(), [NLL, ACC], resamples=200)
    path = tmp_path / "comparison.json"
    path.write_text(json.dumps(comparison.to_json()))
    loaded = Comparison.load(path)
    assert loaded.to_json() == json.loads(path.read_text())
    assert loaded.to_markdown() == comparison.to_markdown()
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="comparison.json: not a selectit.comparison/1 comparison"):
        Comparison.load(path)


def test_compare_means_differences_and_verdicts():
    results = sample_results()
    comparison = compare_variants(results, [NLL, ACC], resamples=500)
    selectit = comparison.cells["selectit"]
    nll_values = results["selectit"]["heldout_nll"][1]
    assert selectit["heldout_nll"].n == 60
    assert selectit["heldout_nll"].interval.estimate == pytest.approx(float(np.mean(nll_values)))
    # A uniform shift of -0.2: exact difference, zero width, and lower NLL is better.
    nll_diff = selectit["heldout_nll"].vs_reference
    assert nll_diff.interval.estimate == pytest.approx(-0.2)
    assert nll_diff.interval.high == pytest.approx(-0.2)
    assert nll_diff.verdict == BETTER
    assert selectit["mmlu/acc"].vs_reference.interval.low > 0
    assert selectit["mmlu/acc"].vs_reference.verdict == BETTER
    assert comparison.cells["longest"]["heldout_nll"].vs_reference.verdict == NO_CLEAR_DIFFERENCE
    assert comparison.cells["random"]["heldout_nll"].vs_reference is None


def test_verdict_takes_the_direction_of_the_metric_into_account():
    up, down, across = Interval(0.1, 0.05, 0.2), Interval(-0.1, -0.2, -0.05), Interval(0.0, -0.1, 0.1)
    assert verdict(up, higher_is_better=True) == BETTER
    assert verdict(up, higher_is_better=False) == WORSE
    assert verdict(down, higher_is_better=True) == WORSE
    assert verdict(down, higher_is_better=False) == BETTER
    assert verdict(across, higher_is_better=True) == NO_CLEAR_DIFFERENCE
    # An interval that only touches 0 does not exclude it.
    assert verdict(Interval(0.1, 0.0, 0.2), higher_is_better=True) == NO_CLEAR_DIFFERENCE


def test_worse_variant_gets_worse_on_both_kinds_of_metric():
    ids = question_ids(30)
    results = {
        "random": {"heldout_nll": (ids, [2.0] * 30), "mmlu/acc": (ids, [1.0] * 20 + [0.0] * 10)},
        "bottom": {"heldout_nll": (ids, [2.5] * 30), "mmlu/acc": (ids, [0.0] * 30)},
    }
    row = compare_variants(results, [NLL, ACC], resamples=300).cells["bottom"]
    assert row["heldout_nll"].vs_reference.verdict == WORSE
    assert row["mmlu/acc"].vs_reference.verdict == WORSE


def test_alignment_is_by_question_id_not_position():
    results = sample_results(40)
    shuffled = {}
    for variant, by_metric in results.items():
        shuffled[variant] = {}
        for metric, (ids, scores) in by_metric.items():
            pairs = list(zip(ids, scores, strict=True))
            random.Random(f"{variant}/{metric}").shuffle(pairs)
            shuffled[variant][metric] = ([p[0] for p in pairs], [p[1] for p in pairs])
    assert shuffled["selectit"]["heldout_nll"][0] != results["selectit"]["heldout_nll"][0]
    in_order = compare_variants(results, [NLL, ACC], resamples=300)
    out_of_order = compare_variants(shuffled, [NLL, ACC], resamples=300)
    assert out_of_order.to_json() == in_order.to_json()


def test_differing_question_ids_name_variant_metric_and_count():
    results = sample_results(10)
    ids, scores = results["selectit"]["mmlu/acc"]
    results["selectit"]["mmlu/acc"] = (ids[:8] + ["x1", "x2"], scores)
    with pytest.raises(ValueError, match=r"'selectit', metric 'mmlu/acc': 4 question ids differ"):
        compare_variants(results, [NLL, ACC], resamples=100)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["selectit"].update(heldout_nll=(question_ids(3), [1.0, 2.0])), "3 question ids but 2 scores"),
        (lambda r: r["selectit"].update(heldout_nll=(["a", "a"], [1.0, 2.0])), "1 question id"),
        (lambda r: r["selectit"].update(heldout_nll=([], [])), "'selectit', metric 'heldout_nll': no questions"),
        (lambda r: r["selectit"].update(heldout_nll=(["a"], [float("nan")])), "NaN"),
    ],
)
def test_compare_rejects_bad_scores(mutate, message):
    results = sample_results(10)
    mutate(results)
    with pytest.raises(ValueError, match=message):
        compare_variants(results, [NLL, ACC], resamples=100)


def test_compare_rejects_unknown_and_colliding_metrics():
    results = sample_results(10)
    with pytest.raises(ValueError, match="'bleu': no variant has scores"):
        compare_variants(results, [NLL, MetricSpec("bleu", True, "BLEU")])
    with pytest.raises(ValueError, match="both give the key 'mmlu_acc'"):
        results["random"]["mmlu-acc"] = results["random"]["mmlu/acc"]
        compare_variants(results, [ACC, MetricSpec("mmlu-acc", True, "acc")])
    with pytest.raises(ValueError, match="no variants"):
        compare_variants({}, [NLL])


def test_missing_reference_omits_differences():
    results = sample_results(20)
    del results["random"]
    comparison = compare_variants(results, [NLL, ACC], resamples=200)
    assert not comparison.reference_present
    assert all(cell.vs_reference is None for row in comparison.cells.values() for cell in row.values())
    assert "No differences: the reference variant `random` is not among the results" in comparison.to_markdown()
    assert not any("_vs_" in key for row in comparison.dvc_metrics().values() for key in row)
    assert comparison.to_json()["reference_present"] is False


def test_variant_without_a_metric_gets_an_empty_cell():
    results = sample_results(20)
    ids, scores = results["random"]["heldout_nll"]
    results["base"] = {"heldout_nll": (ids, [s + 1.0 for s in scores])}
    comparison = compare_variants(results, [NLL, ACC], resamples=200)
    assert comparison.cells["base"]["mmlu/acc"] is None
    assert comparison.to_json()["variants"]["base"]["mmlu/acc"] is None
    assert set(comparison.mlflow_metrics("base")) == {
        "heldout_nll",
        "heldout_nll_low",
        "heldout_nll_high",
        "heldout_nll_vs_random",
    }
    base_row = next(line for line in comparison.to_markdown().splitlines() if line.startswith("| base |"))
    assert base_row.endswith("| n/a |")


# --- the outputs -----------------------------------------------------------------


def test_markdown_shows_the_numbers():
    ids = question_ids(5)
    results = {
        "random": {"heldout_nll": (ids, [2.366] * 5)},
        "selectit": {"heldout_nll": (ids, [2.314] * 5)},
    }
    text = compare_variants(results, [NLL], resamples=400).to_markdown()
    lines = text.splitlines()
    assert "95% percentile bootstrap intervals (400 resamples, seed 0); reference variant: `random`" in lines[0]
    assert "| variant | held-out NLL ↓ |" in lines
    assert "| selectit | 2.314 [2.31, 2.31] |" in lines
    assert "| random | 2.366 [2.37, 2.37] |" in lines
    assert "| selectit | -0.052 [-0.05, -0.05] better |" in lines
    assert sum(line.startswith("| random |") for line in lines) == 1  # no difference row for the reference


def test_markdown_cells_agree_with_the_json():
    comparison = compare_variants(sample_results(), [NLL, ACC], resamples=300, level=0.9)
    text = comparison.to_markdown()
    assert "90% percentile bootstrap" in text
    for variant, row in comparison.to_json()["variants"].items():
        for cell in row.values():
            assert f"{cell['mean']:.3f} [{cell['low']:.2f}, {cell['high']:.2f}]" in text
            d = cell["vs_reference"]
            if variant != "random":
                assert f"{d['diff']:+.3f} [{d['low']:+.2f}, {d['high']:+.2f}] {d['verdict']}" in text


def test_dvc_metrics_keys_are_sanitised_and_flat():
    comparison = compare_variants(sample_results(), [NLL, ACC], resamples=200)
    metrics = comparison.dvc_metrics()
    assert list(metrics) == ["random", "selectit", "longest"]
    assert set(metrics["selectit"]) == {
        "heldout_nll",
        "heldout_nll_low",
        "heldout_nll_high",
        "heldout_nll_vs_random",
        "mmlu_acc",
        "mmlu_acc_low",
        "mmlu_acc_high",
        "mmlu_acc_vs_random",
    }
    assert "mmlu_acc_vs_random" not in metrics["random"]
    for row in metrics.values():
        for key, value in row.items():
            assert re.fullmatch(r"[A-Za-z0-9_]+", key)
            assert type(value) is float
    cell = comparison.cells["selectit"]["mmlu/acc"]
    assert metrics["selectit"]["mmlu_acc_vs_random"] == cell.vs_reference.interval.estimate
    assert comparison.mlflow_metrics("selectit") == metrics["selectit"]
    assert metric_key("mmlu/acc") == "mmlu_acc"
    assert metric_key("  exact-match@1 ") == "exact_match_1"
    with pytest.raises(KeyError, match="full"):
        comparison.mlflow_metrics("full")


def test_json_round_trip():
    comparison = compare_variants(sample_results(), [NLL, ACC], resamples=200)
    data = comparison.to_json()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["format"] == "selectit.comparison/1"
    assert (data["level"], data["resamples"], data["seed"], data["reference"]) == (0.95, 200, 0, "random")
    assert data["metrics"][1] == {
        "name": "mmlu/acc",
        "key": "mmlu_acc",
        "label": "MMLU acc ↑",
        "higher_is_better": True,
    }
    cell = data["variants"]["selectit"]["heldout_nll"]
    assert set(cell) == {"mean", "low", "high", "n", "vs_reference"}
    assert set(cell["vs_reference"]) == {"diff", "low", "high", "verdict"}
    assert cell["n"] == 60
    assert data["variants"]["random"]["heldout_nll"]["vs_reference"] is None


def test_load_comparison_none_when_absent_or_switched_off_and_one_error_when_not_a_comparison(tmp_path):
    from selectit.evaluation.comparison import load_comparison, write_switched_off

    assert load_comparison(tmp_path / "comparison.json") is None
    write_switched_off(tmp_path)
    assert load_comparison(tmp_path / "comparison.json") is None
    (tmp_path / "comparison.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"comparison.json: not a .* comparison"):
        load_comparison(tmp_path / "comparison.json")
