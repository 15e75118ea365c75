"""Preference accuracy: the per-pair score from log-likelihood gains, the base model's cache,
and the seeded split of judged pairs that keeps the evaluation's pairs from any fitter."""

from __future__ import annotations

import dataclasses
import random

import pytest
from helpers import write_pairs

from selectit.audit.pairs import JudgedPair
from selectit.config import EvaluateConfig, JudgeConfig
from selectit.core.errors import InputError
from selectit.core.records import read_rejects
from selectit.evaluation.compare import compare_variants
from selectit.evaluation.metrics import HELDOUT_NLL, PREFERENCE_ACCURACY, ordered_specs
from selectit.evaluation.preference import (
    TIE,
    BaseNllCache,
    pair_score,
    pair_scores,
    preference_accuracy,
    response_examples,
)
from selectit.evaluation.preference_split import (
    PAIRS_FILE,
    REJECTS_FILE,
    PreferenceSplit,
    choose_pairs,
    instruction_key,
    preference_split,
    write_split,
)


def pair(pair_id: str, instruction: str, a: str, b: str, preferred: str, input: str = "") -> JudgedPair:
    return JudgedPair(pair_id, instruction, input, a, b, preferred, line=1)


PAIRS = [
    pair("p1", "Name a colour.", "Red.", "Purple, I think.", "a"),
    pair("p2", "Add 2 and 3.", "5", "2 + 3 = 5.", "b"),
    pair("p3", "Is 17 prime?", "Yes.", "No.", "a"),
]


def nll_table(values: dict[tuple[str, str], float]) -> dict[str, float]:
    """(pair id, side) -> NLL as NLLs keyed by response example id."""
    by_id = {p.pair_id: p for p in PAIRS}
    return {by_id[pid].example_id(side): nll for (pid, side), nll in values.items()}


def test_a_pair_scores_one_when_the_preferred_response_gains_more():
    assert pair_score(0.3, 0.1) == 1.0
    assert pair_score(0.1, 0.3) == 0.0
    assert pair_score(-0.2, -0.5) == 1.0  # both less likely after tuning; the preferred one lost less
    assert pair_score(0.2, 0.2) == TIE == 0.5


def test_pair_scores_from_hand_made_log_likelihoods():
    base = nll_table({("p1", "a"): 2.0, ("p1", "b"): 2.0, ("p2", "a"): 3.0, ("p2", "b"): 1.0, ("p3", "a"): 1.5})
    base[PAIRS[2].example_id("b")] = 4.0
    tuned = nll_table({("p1", "a"): 1.5, ("p1", "b"): 1.9, ("p2", "a"): 2.0, ("p2", "b"): 0.9, ("p3", "a"): 1.5})
    tuned[PAIRS[2].example_id("b")] = 4.0
    # p1: gains a 0.5, b 0.1, a preferred -> 1. p2: gains a 1.0, b 0.1, b preferred -> 0.
    # p3: both gains 0 -> a tie, 0.5.
    assert pair_scores(PAIRS, tuned, base) == [1.0, 0.0, 0.5]


def test_a_variant_built_to_prefer_the_preferred_responses_scores_one_and_the_base_a_half():
    base_nll = {e.id: 2.0 for e in response_examples(PAIRS)}
    preferred = {p.example_id(p.preferred) for p in PAIRS}
    tuned_nll = {eid: (1.0 if eid in preferred else 2.5) for eid in base_nll}

    def lookup(table):
        return lambda examples: {e.id: table[e.id] for e in examples}

    assert preference_accuracy(PAIRS, lookup(tuned_nll), lookup(base_nll)) == (["p1", "p2", "p3"], [1.0, 1.0, 1.0])
    reversed_nll = {eid: (2.5 if eid in preferred else 1.0) for eid in base_nll}
    assert preference_accuracy(PAIRS, lookup(reversed_nll), lookup(base_nll))[1] == [0.0, 0.0, 0.0]
    # The base model is the reference of the gain: every pair is a tie.
    assert preference_accuracy(PAIRS, None, lookup(base_nll))[1] == [TIE] * 3


def test_a_response_shared_by_two_pairs_is_scored_once():
    twins = [pair("f:0", "Say hi.", "Hello!", "Hi.", "a"), pair("m:0", "Say hi.", "Hello!", "Hey there.", "b")]
    assert len(response_examples(twins)) == 3


def test_the_base_model_is_asked_only_for_responses_it_has_not_scored(tmp_path):
    calls = []

    def compute():
        def nll(examples):
            calls.append(len(examples))
            return {e.id: float(len(e.output)) for e in examples}

        return nll

    cache = BaseNllCache(tmp_path, "base-id", 256)
    examples = response_examples(PAIRS)
    first = cache.lookup(examples[:4], compute)
    again = cache.lookup(examples, compute)
    assert calls == [4, 2]  # the second lookup scores only the two new responses
    assert again == {e.id: float(len(e.output)) for e in examples} and first.items() <= again.items()
    assert cache.lookup(examples, compute) == again and calls == [4, 2]
    # Another base model or cut has a cache of its own.
    assert BaseNllCache(tmp_path, "other", 256).path != cache.path != BaseNllCache(tmp_path, "base-id", 128).path


def many_pairs(instructions: int = 30) -> list[JudgedPair]:
    """Two pairs per instruction, as in dev_pairs (one response shared by both)."""
    return [
        pair(f"{gen}:{i}", f"Question {i}?", f"Answer {i}.", f"{gen} says {i}.", "a" if (i + len(gen)) % 2 else "b")
        for i in range(instructions)
        for gen in ("falcon", "minichat")
    ]


def test_the_split_is_seeded_stable_and_nested():
    pairs = many_pairs()
    chosen = choose_pairs(pairs, 10, seed=0)
    assert len(chosen) == 10
    shuffled = pairs[:]
    random.Random(3).shuffle(shuffled)
    assert choose_pairs(shuffled, 10, seed=0) == chosen  # the lines' order does not matter
    assert choose_pairs(pairs, 20, seed=0)[:10] == chosen  # more pairs keep the fewer
    assert [p.pair_id for p in choose_pairs(pairs, 10, seed=1)] != [p.pair_id for p in chosen]
    # The two pairs of one instruction come together.
    keys = [instruction_key(p.instruction, p.input) for p in chosen]
    assert keys[0::2] == keys[1::2]


def test_a_fitter_never_sees_an_instruction_the_evaluation_asks_about():
    pairs = many_pairs()
    split = PreferenceSplit(choose_pairs(pairs, 9, seed=0), [])  # an odd count cuts one instruction's couple
    fitting = split.fitting_pairs(pairs)
    excluded = split.excluded_pair_ids(pairs)
    assert {p.pair_id for p in split.pairs} <= excluded
    assert len(excluded) == 10  # the nine and the other pair of the cut instruction
    assert {p.pair_id for p in fitting} == {p.pair_id for p in pairs} - excluded
    assert not {instruction_key(p.instruction) for p in fitting} & split.instructions
    # Spacing and case do not hide an instruction from the check (another file may write it so).
    copy = dataclasses.replace(split.pairs[0], pair_id="elsewhere", instruction=split.pairs[0].instruction.upper())
    assert split.excluded_pair_ids([copy]) == {"elsewhere"}


def evaluate_config(path, count: int, seed: int = 0) -> EvaluateConfig:
    return EvaluateConfig(
        heldout_loss=True,
        benchmarks={},
        benchmarks_dir="benchmarks",
        run_code=False,
        judge=JudgeConfig(None, None, None, 1, "chatgpt"),
        preference_pairs=count,
        preference_file=str(path),
        preference_seed=seed,
        max_new_tokens=8,
        batch_size=8,
        reference="random",
        bootstrap_resamples=100,
        confidence=0.95,
        seed=0,
    )


def test_preference_split_reads_the_file_and_keeps_its_bad_lines(tmp_path):
    rows = [dataclasses.asdict(p) for p in PAIRS]
    for row in rows:
        del row["line"], row["generators"]
    path = write_pairs(tmp_path / "pairs.jsonl", [*rows, "not json", {"instruction": "x", "preferred": "a"}])
    split = preference_split(evaluate_config(path, 3))
    assert sorted(p.pair_id for p in split.pairs) == ["p1", "p2", "p3"]
    assert [r.line for r in split.rejects] == [4, 5]
    write_split(tmp_path / "eval", split)
    assert (tmp_path / "eval" / PAIRS_FILE).read_text().split() == [p.pair_id for p in split.pairs]
    assert [r.line for r in read_rejects(tmp_path / "eval" / REJECTS_FILE)] == [4, 5]
    # Switched off: nothing is read, and files of an earlier run are removed.
    assert preference_split(evaluate_config(tmp_path / "missing.jsonl", 0)) == PreferenceSplit([], [])
    write_split(tmp_path / "eval", PreferenceSplit([], []))
    assert not (tmp_path / "eval" / PAIRS_FILE).exists() and not (tmp_path / "eval" / REJECTS_FILE).exists()


def test_fewer_usable_pairs_than_asked_is_one_line_naming_the_key(tmp_path):
    rows = [{"pair_id": "p1", "instruction": "Say hi.", "response_a": "x", "response_b": "y", "preferred": "a"}]
    path = write_pairs(tmp_path / "pairs.jsonl", rows)
    with pytest.raises(InputError, match=r"^evaluate.preference_pairs: asks for 2 pairs, but .* has 1 usable") as err:
        preference_split(evaluate_config(path, 2))
    assert "\n" not in str(err.value)
    duplicated = write_pairs(tmp_path / "twice.jsonl", [rows[0], rows[0]])
    with pytest.raises(InputError, match=r"pair_id 'p1' names more than one pair"):
        preference_split(evaluate_config(duplicated, 1))
    with pytest.raises(InputError, match=r"no such file"):
        preference_split(evaluate_config(tmp_path / "missing.jsonl", 1))


def test_preference_accuracy_comes_second_and_is_compared_like_every_metric():
    names = ["mmlu_acc", PREFERENCE_ACCURACY, HELDOUT_NLL]
    specs = ordered_specs(names)
    assert [s.name for s in specs] == [HELDOUT_NLL, PREFERENCE_ACCURACY, "mmlu_acc"]
    assert specs[1].higher_is_better and specs[1].label == "preference accuracy ↑"
    ids = [f"p{i}" for i in range(40)]
    results = {
        "random": {PREFERENCE_ACCURACY: (ids, [1.0, 0.0] * 20)},
        "length": {PREFERENCE_ACCURACY: (ids, [1.0] * 40)},
        "base": {PREFERENCE_ACCURACY: (ids, [TIE] * 40)},
    }
    comparison = compare_variants(results, specs[1:2], reference="random", resamples=500, level=0.95, seed=0)
    assert comparison.cells["length"][PREFERENCE_ACCURACY].vs_reference.verdict == "better"
    base = comparison.cells["base"][PREFERENCE_ACCURACY]
    assert (base.interval.estimate, base.interval.low, base.interval.high) == (0.5, 0.5, 0.5)
    assert base.vs_reference.verdict == "no clear difference"
    assert "preference accuracy ↑" in comparison.to_markdown()
    assert comparison.dvc_metrics()["length"][PREFERENCE_ACCURACY] == 1.0
