"""The audit (selectit/audit/): agreement arithmetic on hand-computed cases, the breakdowns,
bad pairs files, and one audit on the tiny model through the command and the stage."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pytest
from helpers import write_pairs
from test_config import write_params as write_config

from selectit.audit.agreement import LONGER_WINS, SAME_LENGTH, SHORTER_WINS, agreement, outcomes
from selectit.audit.calibration import calibrated_probs, content_free_distributions
from selectit.audit.pairs import JudgedPair, pair_examples, read_pairs
from selectit.audit.report import AuditReport, judge_scorers
from selectit.audit.run import write_audit, write_switched_off
from selectit.audit.scorers import (
    Scorer,
    length_adjusted,
    length_scorer,
    rank_mean,
    selection_scorer_name,
    selectit_scorers,
)
from selectit.audit.validity import rating_validity
from selectit.config import ParamsError, load_params
from selectit.core.errors import InputError
from selectit.rating import ifd
from selectit.scoring import formulas
from selectit.scoring.tables import RATINGS_SCHEMA

BOOTSTRAP = {"resamples": 2000, "level": 0.95, "seed": 0}


def pair(preferred: str, a: str, b: str, instruction: str = "Say something.", line: int = 1) -> JudgedPair:
    return JudgedPair(f"p{line}", instruction, "", a, b, preferred, line)


# Four pairs, lengths (preferred, other): (5, 2) longer wins, (1, 4) shorter wins, (6, 3) longer wins, (3, 3) same.
PAIRS = [
    pair("a", "aaaaa", "bb", line=1),
    pair("b", "aaaa", "b", line=2),
    pair("b", "aaa", "bbbbbb", line=3),
    pair("a", "xyz", "uvw", line=4),
]


def scorer_from(values: dict[tuple[int, str], float]) -> Scorer:
    """A scorer with given scores per (pair line, side)."""
    scores = {PAIRS[line - 1].example_id(side): v for (line, side), v in values.items()}
    return Scorer("handmade", "baseline", "scores set by hand", scores)


# --- agreement arithmetic --------------------------------------------------------------------


def test_wins_losses_and_ties_are_counted_apart():
    preferred = [3.0, 1.0, 2.0, 2.0, float("nan")]
    other = [1.0, 2.0, 2.0, 0.5, 1.0]
    assert outcomes(preferred, other).tolist() == [1, -1, 0, 1, 0]  # a missing score cannot be ordered: a tie
    result = agreement(preferred, other, **BOOTSTRAP)
    assert (result.n, result.wins, result.losses, result.ties) == (5, 2, 1, 2)
    assert result.agreement == pytest.approx(2 / 5)  # ties count as misses, not as half a win
    assert result.tie_share == pytest.approx(2 / 5)
    assert result.interval.low <= 0.4 <= result.interval.high


def test_bootstrap_interval_of_a_hand_checkable_case():
    # Every pair a win: every resample is all wins, the interval has no width.
    assert agreement([2, 2, 2], [1, 1, 1], **BOOTSTRAP).interval.to_dict() == {"estimate": 1, "low": 1, "high": 1}
    # One win, one loss: a resample of two pairs has mean 0, 0.5 or 1 with chances 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% percentiles of 2000 resamples are 0 and 1.
    two = agreement([2, 0], [1, 1], **BOOTSTRAP).interval
    assert (two.estimate, two.low, two.high) == (0.5, 0.0, 1.0)
    # The same seed draws the same resamples.
    assert agreement([2, 0, 1, 3], [1, 1, 1, 1], **BOOTSTRAP) == agreement([2, 0, 1, 3], [1, 1, 1, 1], **BOOTSTRAP)


def test_length_baseline_and_a_scorer_that_equals_length():
    examples = pair_examples(PAIRS, "pairs.jsonl")
    lengths = Scorer("same as length", "baseline", "", {e.id: len(e.output) for e in examples})
    results, relations = judge_scorers(PAIRS, [length_scorer(examples), lengths], **BOOTSTRAP)
    assert relations == {LONGER_WINS: 2, SHORTER_WINS: 1, SAME_LENGTH: 1}
    baseline, same = results
    assert baseline.overall == same.overall
    # Longer wins in pairs 1 and 3, loses pair 2, ties pair 4 (equal lengths).
    assert (baseline.overall.wins, baseline.overall.losses, baseline.overall.ties) == (2, 1, 1)
    assert baseline.overall.agreement == 0.5
    assert baseline.by_length[LONGER_WINS].agreement == 1.0
    assert baseline.by_length[SHORTER_WINS].agreement == 0.0
    assert baseline.by_length[SAME_LENGTH].ties == 1


def test_known_scores_give_the_hand_computed_agreement():
    scorer = scorer_from(
        {
            (1, "a"): 0.9,
            (1, "b"): 0.1,
            (2, "a"): 0.2,
            (2, "b"): 0.7,
            (3, "a"): 0.5,
            (3, "b"): 0.5,
            (4, "a"): 0,
            (4, "b"): 1,
        }
    )
    ((result,), _) = judge_scorers(PAIRS, [scorer], **BOOTSTRAP)
    # pair 1: preferred a 0.9 > 0.1 win; pair 2: preferred b 0.7 > 0.2 win; pair 3: tie; pair 4: a 0 < 1 loss.
    assert (result.overall.wins, result.overall.losses, result.overall.ties) == (2, 1, 1)
    assert result.overall.agreement == 0.5
    assert result.by_length[LONGER_WINS].to_dict()["wins"] == 1  # pairs 1 (win) and 3 (tie)
    assert result.by_length[SHORTER_WINS].agreement == 1.0  # pair 2
    assert result.by_length[SAME_LENGTH].agreement == 0.0  # pair 4


# --- scorers from a ratings table --------------------------------------------------------------


def ratings_table(rows: list[tuple[str, str, int, int, list[float]]]) -> pa.Table:
    """(example id, rater, parameter count, prompt, raw digit probabilities) -> a ratings table."""
    probs = np.array([r[4] for r in rows])
    return pa.table(
        {
            "example_id": [r[0] for r in rows],
            "model": [r[1] for r in rows],
            "model_params": [r[2] for r in rows],
            "prompt_id": [r[3] for r in rows],
            "prompt_version": ["v"] * len(rows),
            "template": ["plain"] * len(rows),
            "k": [3] * len(rows),
            "probs": [list(p) for p in probs],
            "mass": probs.sum(axis=1),
            "top_is_digit": [r[1] == "r1" for r in rows],
            "token_score": formulas.token_scores(probs),
            "n_tokens": [10] * len(rows),
            "truncated": [False] * len(rows),
        },
        schema=RATINGS_SCHEMA,
    )


# Two raters (parameter counts 1 and 3: weights 1/4 and 3/4), two prompts, two examples.
# Token scores: [0, 0, 1] -> 3 (sure of 3); [1, 0, 0] -> 1; [0.5, 0.5, 0] -> 1 * 0.5 / 2 = 0.25.
SURE_3, SURE_1, SPLIT = [0, 0, 0.8], [0.4, 0, 0], [0.3, 0.3, 0]
RATINGS = ratings_table(
    [
        ("x", "r1", 1, 0, SURE_3),
        ("x", "r1", 1, 1, SURE_1),
        ("y", "r1", 1, 0, SPLIT),
        ("y", "r1", 1, 1, SPLIT),
        ("x", "r2", 3, 0, SURE_1),
        ("x", "r2", 3, 1, SURE_1),
        ("y", "r2", 3, 0, SURE_3),
        ("y", "r2", 3, 1, SPLIT),
    ]
)


def test_every_level_of_the_score_is_a_scorer():
    scorers, weights = selectit_scorers(RATINGS, alpha=0.0, authors_softmax=False, weights=None)
    assert weights == {"r1": 0.25, "r2": 0.75}
    by_name = {s.name: s for s in scorers}
    assert list(by_name) == [
        "model",
        "sentence.r1",
        "sentence.r2",
        "prompt.0",
        "prompt.1",
        "token.r1.0",
        "token.r1.1",
        "token.r2.0",
        "token.r2.1",
    ]
    assert by_name["token.r1.0"].scores == pytest.approx({"x": 3.0, "y": 0.25})
    assert by_name["token.r2.1"].scores == pytest.approx({"x": 1.0, "y": 0.25})
    # alpha 0: sentence level is the mean over prompts.
    assert by_name["sentence.r1"].scores == pytest.approx({"x": 2.0, "y": 0.25})
    assert by_name["sentence.r2"].scores == pytest.approx({"x": 1.0, "y": 1.625})
    assert by_name["model"].scores == pytest.approx({"x": 0.25 * 2 + 0.75 * 1, "y": 0.25 * 0.25 + 0.75 * 1.625})
    # A prompt alone: the raters' token scores under it, weighted as at model level.
    assert by_name["prompt.0"].scores == pytest.approx({"x": 0.25 * 3 + 0.75 * 1, "y": 0.25 * 0.25 + 0.75 * 3})
    assert (by_name["sentence.r2"].rater, by_name["prompt.1"].prompt) == ("r2", 1)


def test_rating_validity_per_rater_and_prompt():
    rows = {(v.rater, v.prompt): v for v in rating_validity(RATINGS)}
    assert list(rows) == [("r1", 0), ("r1", 1), ("r2", 0), ("r2", 1)]
    assert rows[("r1", 0)].digit_mass == pytest.approx((0.8 + 0.6) / 2)
    assert rows[("r1", 1)].digit_mass == pytest.approx((0.4 + 0.6) / 2)
    assert rows[("r1", 0)].top_is_digit_share == 1.0 and rows[("r2", 0)].top_is_digit_share == 0.0
    assert rows[("r2", 1)].texts == 2


def test_report_metrics_and_tables_name_every_breakdown(tmp_path):
    examples = pair_examples(PAIRS, "pairs.jsonl")
    ids = {e.id for e in examples}
    scorers, weights = selectit_scorers(
        ratings_table(
            [(eid, "r1", 1, p, SURE_3 if i % 2 else SPLIT) for i, eid in enumerate(sorted(ids)) for p in (0, 1)]
        ),
        alpha=0.2,
        authors_softmax=False,
        weights=None,
    )
    results, relations = judge_scorers(PAIRS, [*scorers, length_scorer(examples)], **BOOTSTRAP)
    report = AuditReport("pairs.jsonl", "ab" * 32, 4, [], [], relations, results, [], weights, 2000, 0.95, 0)
    metrics = report.mlflow_metrics()
    assert metrics["audit.pairs"] == 4 and metrics["audit.longer_wins_share"] == 0.5
    assert metrics["audit.length.agreement"] == 0.5
    assert metrics["audit.length.agreement_longer_wins"] == 1.0
    assert metrics["audit.length.agreement_shorter_wins"] == 0.0
    for name in ("", "sentence.r1.", "prompt.0.", "token.r1.1."):
        for key in ("agreement", "agreement_low", "agreement_high", "tie_share", "agreement_shorter_wins"):
            assert f"audit.{name}{key}" in metrics
    assert metrics["audit.agreement"] == report.result("model").overall.agreement
    assert set(report.dvc_metrics()) == {"pairs", "model", "sentence.r1", "prompt.0", "prompt.1", "token.r1.0"} | {
        "token.r1.1",
        "length",
    }
    markdown = report.to_markdown()
    assert "| preferred is longer (n=2) | preferred is shorter (n=1) | same length (n=1)" in markdown
    assert "| chance | 50.0% |" in markdown and "`length`: response length (longer wins) | 50.0% [" in markdown
    assert json.loads(json.dumps(report.to_json()))["scorers"][0]["by_length"]["shorter_wins"]["n"] == 1
    # The headline is the scorer the selection ranks by; the others keep their prefixed names.
    other = dataclasses.replace(report, headline="prompt.0").mlflow_metrics()
    assert other["audit.agreement"] == report.result("prompt.0").overall.agreement
    assert other["audit.model.agreement"] == metrics["audit.agreement"] and "audit.prompt.0.agreement" not in other
    # Read back as written (the report stage's way in): the same JSON; an audit switched off reads as None.
    write_audit(report, tmp_path)
    loaded = AuditReport.load(tmp_path / "audit.json", tmp_path / "rejects.jsonl")
    assert loaded.to_json() == json.loads((tmp_path / "audit.json").read_text())
    assert loaded.to_markdown() == report.to_markdown()
    write_switched_off(tmp_path)
    assert AuditReport.load(tmp_path / "audit.json", tmp_path / "rejects.jsonl") is None


def test_the_headline_follows_the_aggregate_token_score():
    assert selection_scorer_name("paper") == "model"
    assert selection_scorer_name("expected") == "expected.model"


# --- the pairs file ------------------------------------------------------------------------------


GOOD = {"instruction": "Name a colour.", "response_a": "Red.", "response_b": "A colour.", "preferred": "a"}


def test_bad_lines_are_rejected_with_file_and_line_and_the_rest_is_read(tmp_path):
    path = write_pairs(
        tmp_path / "pairs.jsonl",
        [
            GOOD,
            {k: v for k, v in GOOD.items() if k != "response_b"},
            {**GOOD, "preferred": "c"},
            "",  # blank lines are skipped
            "{not json",
            {**GOOD, "input": None, "pair_id": "last", "preferred": "b"},
        ],
    )
    read = read_pairs(path)
    assert [p.line for p in read.pairs] == [1, 6] and read.pairs[1].pair_id == "last" and read.pairs[1].input == ""
    assert [(r.source, r.line) for r in read.rejects] == [(path, 2), (path, 3), (path, 5)]
    assert read.rejects[0].reason == "missing field 'response_b'"
    assert read.rejects[1].reason == 'field \'preferred\' must be "a" or "b", got "c"'
    assert read.rejects[2].reason.startswith("invalid JSON")
    # The limit counts usable pairs, and reading stops there.
    assert [p.line for p in read_pairs(path, limit=1).pairs] == [1] and not read_pairs(path, limit=1).rejects


def test_a_file_without_a_usable_pair_is_one_clear_error(tmp_path):
    path = write_pairs(tmp_path / "pairs.jsonl", [{**GOOD, "preferred": "A"}, {**GOOD, "instruction": 3}])
    with pytest.raises(InputError, match=r"pairs.jsonl: no usable judged pair in 2 line\(s\); line 1: field 'pref"):
        read_pairs(path)
    with pytest.raises(InputError, match="empty.jsonl is empty"):
        read_pairs(write_pairs(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(InputError, match="absent.jsonl: no such file"):
        read_pairs(tmp_path / "absent.jsonl")


def test_the_same_response_twice_is_rated_once(tmp_path):
    twice = [pair("a", "same", "other", line=1), pair("b", "third", "same", line=2)]
    examples = pair_examples(twice, "pairs.jsonl")
    assert [e.output for e in examples] == ["same", "other", "third"]
    assert len({(e.source, e.row) for e in examples}) == 3  # each traced to its own line and side


def test_audit_settings_are_checked_and_the_pairs_path_is_relative_to_params(tmp_path):
    params = load_params(write_config(tmp_path / "sub"))
    assert params.audit.pairs == str(tmp_path / "sub" / "pairs.jsonl")
    assert params.audit.enabled is True and params.audit.limit == 40
    with pytest.raises(ParamsError, match="audit.limit: expected an integer >= 1"):
        load_params(write_config(tmp_path, {"audit.limit": 0}))
    with pytest.raises(ParamsError, match="audit.pairs: expected a JSON lines file"):
        load_params(write_config(tmp_path, {"audit.pairs": " "}))


# --- making small raters better: variants of the score from the same table ------------------------


def test_expected_rating_and_calibration_by_hand():
    assert formulas.expected_ratings(np.array([SURE_3, SURE_1, SPLIT])).tolist() == pytest.approx([3.0, 1.0, 1.5])
    assert np.isnan(formulas.expected_ratings(np.array([[0.0, 0.0, 0.0]]))).all()
    # A rating that looks exactly like the rater's lean becomes uniform; another moves by q.
    lean = np.array([0.5, 0.25, 0.25])
    assert formulas.calibrate(np.array([[0.4, 0.2, 0.2]]), lean).tolist()[0] == pytest.approx([1 / 3] * 3)
    # [0.2, 0.3, 0.5] / [0.4, 0.4, 0.2] = [0.5, 0.75, 2.5], over 3.75.
    moved = formulas.calibrate(np.array([0.2, 0.3, 0.5]), np.array([0.4, 0.4, 0.2]))
    assert moved.tolist() == pytest.approx([0.5 / 3.75, 0.75 / 3.75, 2.5 / 3.75])
    assert formulas.token_level(np.array([SPLIT]), "expected").tolist() == [1.5]
    with pytest.raises(ValueError, match="must be one of"):
        formulas.token_level(np.array([SPLIT]), "median")


def test_the_expected_rating_at_every_level():
    scorers, _ = selectit_scorers(RATINGS, alpha=0.0, authors_softmax=False, weights=None, variant="expected")
    by_name = {s.name: s for s in scorers}
    assert list(by_name)[:3] == ["expected.model", "expected.sentence.r1", "expected.sentence.r2"]
    # Expected ratings: SURE_3 -> 3, SURE_1 -> 1, SPLIT -> 1.5.
    assert by_name["expected.token.r2.0"].scores == pytest.approx({"x": 1.0, "y": 3.0})
    assert by_name["expected.sentence.r1"].scores == pytest.approx({"x": 2.0, "y": 1.5})
    assert by_name["expected.sentence.r2"].scores == pytest.approx({"x": 1.0, "y": 2.25})
    assert by_name["expected.model"].scores == pytest.approx({"x": 1.25, "y": 0.25 * 1.5 + 0.75 * 2.25})
    assert by_name["expected.prompt.0"].scores == pytest.approx({"x": 1.5, "y": 0.25 * 1.5 + 0.75 * 3})
    assert {s.variant for s in scorers} == {"expected"}


def test_calibrated_scores_divide_by_the_content_free_lean():
    lean_probs = [0.4, 0.2, 0.2]  # normalised: [0.5, 0.25, 0.25]
    content_free = ratings_table(
        [
            (f"cf{i}", rater, n, prompt, lean_probs)
            for i in range(2)
            for rater, n in (("r1", 1), ("r2", 3))
            for prompt in (0, 1)
        ]
        + [("empty", "r1", 1, 0, [0.0, 0.0, 0.0])]  # no digit mass: left out of the mean
    )
    lean = content_free_distributions(content_free)
    assert set(lean) == {("r1", 0), ("r1", 1), ("r2", 0), ("r2", 1)}
    assert lean[("r1", 0)].tolist() == pytest.approx([0.5, 0.25, 0.25])
    calibrated = calibrated_probs(RATINGS, lean)
    scorers, _ = selectit_scorers(RATINGS, 0.0, False, None, variant="calibrated", calibrated=calibrated)
    by_name = {s.name: s for s in scorers}
    # SPLIT [0.5, 0.5, 0] / lean = [1, 2, 0] -> [1/3, 2/3, 0]: rating 2, spread (1/3 + 2/3) / 2 -> 2 * 0.5 = 1.
    assert by_name["calibrated.token.r1.0"].scores == pytest.approx({"x": 3.0, "y": 1.0})
    scorers, _ = selectit_scorers(RATINGS, 0.0, False, None, variant="calibrated_expected", calibrated=calibrated)
    assert {s.name: s for s in scorers}["calibrated_expected.token.r1.1"].scores == pytest.approx(
        {"x": 1.0, "y": 1 / 3 + 2 * 2 / 3}
    )
    with pytest.raises(ValueError, match="needs the calibrated distributions"):
        selectit_scorers(RATINGS, 0.0, False, None, variant="calibrated")
    with pytest.raises(ValueError, match=r"no content-free rating for \(rater, prompt\) \[\('r2', 0\)"):
        calibrated_probs(RATINGS, {k: v for k, v in lean.items() if k != ("r2", 0)})


def test_length_adjusted_score_is_the_residual_on_log_length():
    # log(1 + length) = 0, 1, 2; scores 0, 3, 0: the fitted line is flat at 1.
    lengths = {"a": 0.0, "b": np.e - 1, "c": np.e**2 - 1}
    adjusted = length_adjusted(Scorer("s", "model", "a score", {"a": 0.0, "b": 3.0, "c": 0.0}), lengths)
    assert adjusted.name == "length_adjusted.s" and "length-adjusted (option)" in adjusted.description
    assert adjusted.scores == pytest.approx({"a": -1.0, "b": 2.0, "c": -1.0})
    # A score that length explains entirely leaves nothing (a missing score stays missing).
    linear = {k: 2 * np.log1p(v) + 1 for k, v in lengths.items()} | {"d": float("nan")}
    flat = length_adjusted(Scorer("s", "model", "", linear), lengths | {"d": 5})
    assert [abs(flat.scores[k]) < 1e-9 for k in "abc"] == [True] * 3 and np.isnan(flat.scores["d"])


def test_rank_mean_of_two_scorers():
    first = Scorer("f", "model", "", {"a": 1.0, "b": 2.0, "c": 2.0, "d": float("nan")})
    second = Scorer("s", "likelihood", "", {"a": 3.0, "b": 1.0, "c": 2.0, "d": 0.0})
    combined = rank_mean(first, second)
    # first: a lowest, b and c tied (mean rank 1.5 of 0..2); second: d, b, c, a (ranks 0..3).
    assert combined.name == "rank_mean.f.with.s"
    assert {k: combined.scores[k] for k in "abc"} == pytest.approx(
        {"a": (0 + 1) / 2, "b": (0.75 + 1 / 3) / 2, "c": (0.75 + 2 / 3) / 2}
    )
    assert np.isnan(combined.scores["d"])


def test_mlflow_takes_a_combined_scorers_metric_name(tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("names")).info.run_id
    name = "audit.rank_mean.model.with.ifd_inverse.gemma3-270m.agreement"
    client.log_metric(run_id, name, 0.5)
    assert client.get_run(run_id).data.metrics == {name: 0.5}


def test_agreement_by_generator_pair(tmp_path):
    rows = [
        GOOD | {"generator_a": "m1", "generator_b": "m2"},
        GOOD | {"generator_a": "m1"},  # one generator named: no group
    ]
    read = read_pairs(write_pairs(tmp_path / "pairs.jsonl", rows))
    assert [p.generators for p in read.pairs] == ["m1 vs m2", ""]
    named = [
        JudgedPair(p.pair_id, p.instruction, p.input, p.response_a, p.response_b, p.preferred, p.line, g)
        for p, g in zip(PAIRS, ["x vs y", "x vs y", "x vs z", "x vs z"], strict=True)
    ]
    scorer = scorer_from({(1, "a"): 0.9, (1, "b"): 0.1, (2, "a"): 0.2, (2, "b"): 0.7} | {(3, "a"): 0.5, (3, "b"): 0.5})
    scorer.scores.update({PAIRS[3].example_id("a"): 0.0, PAIRS[3].example_id("b"): 1.0})
    ((result,), _) = judge_scorers(named, [scorer], **BOOTSTRAP)
    assert {g: (a.wins, a.losses, a.ties) for g, a in result.by_generators.items()} == {
        "x vs y": (2, 0, 0),
        "x vs z": (0, 1, 1),
    }
    report = AuditReport(
        "p.jsonl",
        "ab" * 32,
        4,
        [],
        [],
        {LONGER_WINS: 4},
        [result],
        [],
        {},
        2000,
        0.95,
        0,
        generators={"x vs y": 2, "x vs z": 2},
    )
    assert "## By generator pair" in report.to_markdown() and "| x vs y (n=2) | x vs z (n=2)" in report.to_markdown()
    assert report.to_json()["scorers"][0]["by_generators"]["x vs z"]["losses"] == 1


# --- IFD -------------------------------------------------------------------------------------------


def test_ifd_arithmetic_and_batches_under_both_budgets():
    assert ifd.ifd_scores([2.0, 1.0, 1.0], [4.0, 0.0, 2.0]).tolist()[::2] == [0.5, 0.5]
    assert np.isnan(ifd.ifd_scores([1.0], [0.0])).all()  # no response tokens: no IFD
    items = [ifd.LossItem([0] * n, scored) for n, scored in [(10, 2), (8, 7), (6, 1), (3, 2)]]
    # Longest first; at most 20 padded tokens and 12 logit rows (scored + 1) per batch.
    assert ifd.pack_batches(items, token_budget=20, logit_budget=12) == [[0], [1], [2, 3]]
    assert ifd.pack_batches(items, token_budget=100, logit_budget=100) == [[0, 1, 2, 3]]
    assert "### Input:\nGood morning" in ifd.alpaca_prompt("Translate.", "Good morning")
    assert "### Input" not in ifd.alpaca_prompt("Translate.", "  ")
