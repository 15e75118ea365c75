"""Decontamination against benchmark n-grams and near-duplicates by MinHash: exact small cases."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pytest

from selectit.core.errors import InputError
from selectit.hygiene.benchmark_texts import BenchmarkText, iter_benchmark_texts
from selectit.hygiene.decontamination import BenchmarkNgrams, words
from selectit.hygiene.near_duplicates import NearDuplicateFilter, shingles

GSM8K_QUESTION = (
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
    "friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg."
)


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
    (tmp_path / "bbh").mkdir()
    (tmp_path / "bbh" / "navigate.json").write_text(json.dumps({"examples": [{"input": "Turn left.", "target": "No"}]}))
    (tmp_path / "gsm8k_test.jsonl").write_text(json.dumps({"question": "Q1", "answer": "#### 1"}) + "\n")
    with gzip.open(tmp_path / "humaneval.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"task_id": "HumanEval/0", "prompt": "def f():"}) + "\n")
    (tmp_path / "alpaca_eval_805_davinci003.json").write_text(json.dumps([{"instruction": "Say hi.", "output": "Hi"}]))
    with zipfile.ZipFile(tmp_path / "mmlu.zip", "w") as archive:
        archive.writestr("data/test/anatomy_test.csv", "What is it?,a,b,c,d,A\n")
    found = [(t.benchmark, t.index, t.text) for t in iter_benchmark_texts(tmp_path)]
    assert found == [
        ("mmlu", "anatomy/test/0", "What is it? a b c d"),
        ("gsm8k", "0", "Q1"),
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
    with pytest.raises(InputError, match=r"gsm8k_test\.jsonl line 2: expected a JSON object with a 'question'"):
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
