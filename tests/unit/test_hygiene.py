"""Decontamination against benchmark n-grams and near-duplicates by MinHash: exact small cases."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import yaml
from helpers import GSM8K_QUESTION, ROOT, tiny_benchmarks

from selectit.checks.run import validate_folder
from selectit.config import HygieneConfig, ValidateConfig
from selectit.core.errors import InputError
from selectit.core.layout import Layout
from selectit.core.records import Example, example_id, write_example_records
from selectit.hygiene.benchmark_texts import BenchmarkText, iter_benchmark_texts
from selectit.hygiene.decontamination import BenchmarkNgrams, words
from selectit.hygiene.near_duplicates import NearDuplicateFilter, shingles


def test_words_drop_case_punctuation_and_whitespace():
    assert words("Janet’s  DUCKS\nlay, 16 eggs!") == ["janet", "s", "ducks", "lay", "16", "eggs"]


def test_a_planted_gsm8k_question_is_found_with_its_place():
    index = BenchmarkNgrams([BenchmarkText("gsm8k", "0", GSM8K_QUESTION)], 13)
    example = "Solve this for me:\n" + GSM8K_QUESTION.upper().replace(".", " ;") + "\nThanks."
    hit = index.find(example)
    assert hit is not None
    assert (hit.benchmark, hit.index) == ("gsm8k", "0")
    assert hit.ngram == "janet s ducks lay 16 eggs per day she eats three for breakfast"
    assert "gsm8k question 0" in hit.reason


def test_a_twelve_word_overlap_is_kept_and_thirteen_are_not():
    question = " ".join(f"w{i}" for i in range(30))
    index = BenchmarkNgrams([BenchmarkText("bbh", "navigate/3", question)], 13)
    twelve = " ".join(f"w{i}" for i in range(5, 17))
    assert index.find(f"start {twelve} end") is None
    thirteen = " ".join(f"w{i}" for i in range(5, 18))
    assert index.find(f"start {thirteen} end").index == "navigate/3"


def test_the_first_question_owns_a_shared_ngram():
    text = " ".join(f"w{i}" for i in range(13))
    index = BenchmarkNgrams([BenchmarkText("mmlu", "a/test/0", text), BenchmarkText("bbh", "b/1", text)], 13)
    assert (index.find(text).benchmark, index.too_short, len(index)) == ("mmlu", 0, 1)


def test_benchmark_texts_read_every_benchmark(tmp_path: Path):
    found = [(t.benchmark, t.index, t.text[:12]) for t in iter_benchmark_texts(tiny_benchmarks(tmp_path))]
    assert found == [
        ("mmlu", "anatomy/test/0", "What is it? "),
        ("gsm8k", "0", "Janet's duck"),
        ("bbh", "navigate/0", "Turn left."),
        ("humaneval", "HumanEval/0", "def f():"),
        ("alpaca_eval", "0", "Say hi."),
    ]


def test_a_missing_benchmark_file_names_the_key(tmp_path: Path):
    with pytest.raises(InputError, match=r"evaluate\.benchmarks_dir: .* lacks .*mmlu\.zip"):
        list(iter_benchmark_texts(tmp_path))


def test_a_broken_benchmark_line_names_file_and_line(tmp_path: Path):
    for name in ("mmlu.zip", "humaneval.jsonl.gz", "alpaca_eval_805_davinci003.json"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "bbh").mkdir()
    with zipfile.ZipFile(tmp_path / "mmlu.zip", "w"):
        pass
    (tmp_path / "gsm8k_test.jsonl").write_text('{"question": "ok"}\n{"question": \n')
    with pytest.raises(InputError, match=r"gsm8k_test\.jsonl line 2: expected a JSON object with 'question'"):
        list(iter_benchmark_texts(tmp_path))


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b)


def test_minhash_near_duplicates_on_both_sides_of_the_threshold():
    base = [f"word{i}" for i in range(200)]
    close = base[:190] + [f"other{i}" for i in range(10)]  # shares most shingles
    far = base[:120] + [f"other{i}" for i in range(80)]
    true_close = _jaccard(shingles(" ".join(base), 5), shingles(" ".join(close), 5))
    true_far = _jaccard(shingles(" ".join(base), 5), shingles(" ".join(far), 5))
    assert true_close > 0.85 and true_far < 0.6  # the cases are what they say

    dedup = NearDuplicateFilter(threshold=0.8, num_perm=256, shingle_words=5)
    assert dedup.check("a", " ".join(base)) is None
    duplicate = dedup.check("b", " ".join(close))
    assert duplicate is not None and duplicate.of == "a"
    assert duplicate.jaccard == pytest.approx(true_close, abs=0.08)  # MinHash's error with 256 permutations
    assert dedup.check("c", " ".join(far)) is None  # kept: below the threshold
    assert "near-duplicate of a" in duplicate.reason


def test_the_first_occurrence_is_kept_and_later_ones_point_to_it():
    dedup = NearDuplicateFilter(threshold=0.8, num_perm=128, shingle_words=3)
    text = "Write a short poem about the sea and the wind at night."
    assert dedup.check("first", text) is None
    assert dedup.check("second", text + " ").of == "first"
    assert dedup.check("third", text.upper()).of == "first"  # normalised like decontamination


def _validate(tmp_path: Path, rows: list[dict], **hygiene):
    """The validate stage's library call on `rows` as ingested records, with the tiny benchmarks."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    layout = Layout(tmp_path / "data")
    examples = [
        Example(
            example_id(r["instruction"], r["input"], r["output"]),
            r["instruction"],
            r["input"],
            r["output"],
            "in.json",
            i,
            "alpaca",
            r,
        )
        for i, r in enumerate(rows)
    ]
    write_example_records(examples, layout.examples(layout.ingested))
    validate = ValidateConfig(**{**raw["validate"], "heldout": 0.0})
    summary = validate_folder(
        validate, HygieneConfig(**{**raw["hygiene"], **hygiene}), tiny_benchmarks(tmp_path / "bench"), layout, False
    )
    kept = [json.loads(line)["row"] for line in layout.examples(layout.validated).read_text().splitlines()]
    rejects = [json.loads(line) for line in layout.rejects(layout.validated).read_text().splitlines()]
    return summary, kept, rejects


POOL = [
    {"instruction": "Solve it.", "input": GSM8K_QUESTION, "output": "She makes $18 every day."},
    {"instruction": "Write a short poem about the sea and the wind at night.", "input": "", "output": "Waves hum low."},
    {"instruction": "Write a short poem about the sea and the wind at night!", "input": "", "output": "Waves hum low."},
    {"instruction": "Name a primary colour.", "input": "", "output": "Red."},
]


def test_the_validate_stage_rejects_a_benchmark_question_and_a_near_duplicate(tmp_path):
    summary, kept, rejects = _validate(tmp_path, POOL)
    assert kept == [1, 3]  # the GSM8K question and the later near-duplicate are gone, the first poem stays
    assert summary.contaminated == {"gsm8k": 1} and summary.near_duplicates == 1
    assert (summary.valid, summary.rejects) == (2, 2)
    reasons = {r["row"]: r["reason"] for r in rejects}
    assert reasons[0].startswith("contaminated: shares the words 'janet s ducks") and "gsm8k question 0" in reasons[0]
    assert reasons[2].startswith("near-duplicate of ")
    assert summary.settings["hygiene"]["ngram"] == 13


def test_with_the_hygiene_switched_off_every_valid_row_stays(tmp_path):
    summary, kept, rejects = _validate(tmp_path, POOL, decontaminate=False, near_duplicates=False)
    assert kept == [0, 1, 2, 3] and rejects == [] and summary.contaminated == {}


@pytest.mark.parametrize(
    ("benchmark", "broken", "message"),
    [
        ("gsm8k", ("gsm8k_test.jsonl", '{"question": "q", "answer": "#### 1"}\n{"question": "q"\n'), r"line 2"),
        ("gsm8k", ("gsm8k_test.jsonl", '{"question": "q"}\n'), r"line 1: .* strings \(no field 'answer'\)"),
        ("bbh", ("bbh/navigate.json", '{"examples": [{"input": "x"}]}'), r": examples\[0\]: expected .*'target'"),
    ],
)
def test_a_broken_benchmark_file_is_named_with_its_line_before_evaluation(tmp_path, benchmark, broken, message):
    from helpers import tiny_benchmarks

    from selectit.hygiene.benchmark_texts import check_evaluated_files

    folder = tiny_benchmarks(tmp_path / "benchmarks")
    check_evaluated_files(["mmlu", "gsm8k", "bbh"], folder)  # the intact files pass
    (folder / broken[0]).write_text(broken[1])
    with pytest.raises(InputError, match=f"{broken[0]}.*{message}"):
        check_evaluated_files([benchmark], folder)
    check_evaluated_files([], folder)  # a benchmark not asked from is not read


def test_a_300000_character_response_is_cut_kept_and_flagged_not_a_failed_run(tmp_path):
    long = {"instruction": "Write a very long story.", "input": "", "output": "Once upon a time. " * 16_667}
    summary, kept, rejects = _validate(tmp_path, [*POOL[1:], long], decontaminate=False, near_duplicates=False)
    assert kept == [0, 1, 2, 3] and rejects == []  # before: 1 of 4 rejected, above the 20% limit: the run stopped
    (flag,) = [
        json.loads(line) for line in (tmp_path / "data" / "validated" / "flagged.jsonl").read_text().splitlines()
    ]
    assert flag["row"] == 3 and flag["flag"] == "truncated" and summary.flagged == {"truncated": 1}
    assert flag["detail"] == "response cut from 300006 to 19976 characters (validate.max_chars)"
