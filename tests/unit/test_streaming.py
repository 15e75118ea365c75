"""Stages read and write their data as a stream: the same results as reading it whole."""

from __future__ import annotations

import gzip
import json

import pyarrow.parquet as pq
import pytest
from helpers import uniform_ratings

from selectit.core.errors import InputError
from selectit.core.records import (
    Example,
    Reject,
    example_id,
    iter_example_record_shards,
    read_example_records,
    read_rejects,
    write_example_records,
    write_json_list,
)
from selectit.ingest.formats import iter_examples
from selectit.ingest.sources import ingest, ingest_into
from selectit.rating.shards import ShardCache, plan_shard_refs

ROWS = [{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."} for i in range(7)]


def _jsonl_gz(path, rows, extra: bytes = b"") -> None:
    path.write_bytes(gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + extra))


def test_a_gzipped_json_lines_file_is_read_row_by_row(tmp_path):
    # A gzip stream cut short: every row before the cut comes out before the error.
    path = tmp_path / "cut.jsonl.gz"
    _jsonl_gz(path, ROWS)
    path.write_bytes(path.read_bytes()[:-12])
    seen = []
    with pytest.raises(InputError, match="cut.jsonl.gz: not a valid gzip file"):
        for item in iter_examples([path]):
            seen.append(item.instruction)
    assert seen and seen == [r["instruction"] for r in ROWS[: len(seen)]]


def test_ingest_into_writes_what_ingest_returns(tmp_path):
    path = tmp_path / "source.jsonl.gz"
    _jsonl_gz(path, [*ROWS, ROWS[2], {"instruction": "no output"}], b"{broken\n")
    whole = ingest([str(path)], limit=5, download_dir=tmp_path / "dl")
    examples, rejects = tmp_path / "out" / "examples.jsonl", tmp_path / "out" / "rejects.jsonl"
    counts = ingest_into([str(path)], 5, tmp_path / "dl", examples, rejects)
    assert read_example_records(examples) == whole.examples
    assert read_rejects(rejects) == whole.rejects and len(whole.rejects) == 3
    assert (counts.examples, counts.rejects, counts.n_duplicates, counts.n_read) == (5, 3, 1, 7)
    assert counts.sources == whole.sources


def test_ingest_into_leaves_no_file_when_the_source_fails(tmp_path):
    path = tmp_path / "weird.jsonl"
    path.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    examples, rejects = tmp_path / "out" / "examples.jsonl", tmp_path / "out" / "rejects.jsonl"
    with pytest.raises(InputError, match="no row is in a known format"):
        ingest_into([str(path)], None, tmp_path / "dl", examples, rejects)
    assert not examples.exists() and not rejects.exists()
    assert not list((tmp_path / "out").iterdir())  # no temporary file left either


@pytest.mark.parametrize("rows", [[], ROWS[:1], ROWS, [{"a": [1, {"b": []}], "c": "x\ny"}]])
def test_write_json_list_matches_json_dumps(tmp_path, rows):
    path = tmp_path / "out.json"
    write_json_list(iter(rows), path)
    assert path.read_text() == json.dumps(rows, indent=2, ensure_ascii=False) + "\n"


def _examples(n: int) -> list[Example]:
    rows = [{"instruction": f"Q{i}", "input": "", "output": f"A{i}"} for i in range(n)]
    return [
        Example(example_id(r["instruction"], "", r["output"]), r["instruction"], "", r["output"], "s", i, "alpaca", r)
        for i, r in enumerate(rows)
    ]


def test_record_shards_and_shard_refs_cut_the_file_in_input_order(tmp_path):
    examples = _examples(7)
    records = tmp_path / "examples.jsonl"
    write_example_records(iter(examples), records)
    assert list(iter_example_record_shards(records, 3)) == [examples[:3], examples[3:6], examples[6:]]
    done = {examples[1].id, examples[4].id}
    plan = plan_shard_refs(records, done, 2)
    e = examples
    assert [ref.load() for ref in plan.shards] == [[e[0], e[2]], [e[3], e[5]], [e[6]]]
    assert plan.total == len(examples)
    assert plan.already_rated == len(done)
    assert [len(ref) for ref in plan.shards] == [2, 2, 1]


def test_collect_into_takes_each_example_once_in_the_files_order(tmp_path, monkeypatch):
    monkeypatch.setattr("selectit.rating.shards.COLLECT_BATCH", 3)  # several batches
    monkeypatch.setattr("selectit.rating.shards.OPEN_SHARDS", 1)  # shards read again
    examples = _examples(9)
    cache = ShardCache(tmp_path / "cache", "tiny", {"model": "m"})
    # Shards of earlier runs overlap (examples 4 and 5 twice, rated differently); one example is unreadable.
    cache.write(examples[3:6], uniform_ratings(examples[3:6], score=9.0), {})
    cache.write(examples[4:6], uniform_ratings(examples[4:6], score=5.0), {})
    todo = [e for e in examples if e.id not in cache.done_ids()]
    for shard in (todo[i : i + 2] for i in range(0, len(todo), 2)):
        unfit = {e.id: "too long" for e in shard if e is examples[6]}
        cache.write(shard, uniform_ratings([e for e in shard if e.id not in unfit]), unfit)
    wanted = examples[1:]  # one cached example is not asked for
    records = tmp_path / "examples.jsonl"
    write_example_records(wanted, records)
    rows, rejects = cache.collect_into(records, tmp_path / "ratings.parquet")
    table = pq.read_table(tmp_path / "ratings.parquet")
    # An example in two shards is taken from the first by name, whole.
    overlap = 9.0 if cache.shard_id(examples[3:6]) < cache.shard_id(examples[4:6]) else 5.0
    score = {e.id: overlap if e in examples[4:6] else 9.0 if e is examples[3] else 1.0 for e in wanted}
    rated = [e.id for e in wanted if e is not examples[6]]
    assert table["example_id"].to_pylist() == [i for i in rated for _ in range(2)]
    assert table["prompt_id"].to_pylist() == [0, 1] * len(rated)
    assert table["token_score"].to_pylist() == [score[i] + p for i in rated for p in range(2)]
    assert rows == table.num_rows == 2 * 7
    assert rejects == [Reject("s", 6, None, "too long", examples[6].raw)]


def test_validating_a_records_file_finds_what_validating_the_examples_does(tmp_path):
    from selectit.checks.examples import validate_examples, validate_record_file
    from selectit.config import ValidateConfig

    cfg = ValidateConfig(min_chars=3, max_chars=200, max_reject_fraction=0.5, heldout=0.0, seed=0)

    def make(row: int, instruction: str, output: str, id: str | None = None) -> Example:
        raw = {"instruction": instruction, "input": "", "output": output}
        return Example(id or example_id(instruction, "", output), instruction, "", output, "d", row, "alpaca", raw)

    examples = [make(i, f"Name a prime above {i * 10}.", f"{i * 10 + 1}, say.") for i in range(8)]
    examples += [
        make(8, "Say hi.", "  "),  # too short
        make(9, "name a prime ABOVE 10.", "11,  say."),  # near-duplicate of row 1
        make(10, "Other.", "Text \x01 here.", id=examples[2].id),  # repeated id and a control character
    ]
    records = tmp_path / "examples.jsonl"
    write_example_records(examples, records)
    whole = validate_examples(read_example_records(records), cfg)
    streamed = validate_record_file(records, cfg)
    assert streamed.rejects == whole.rejects and len(whole.rejects) == 3
    assert streamed.rejected == {8, 9, 10} and streamed.examples_in == len(examples)
    assert streamed.valid_ids == [e.id for e in whole.valid]
    assert streamed.expectations == whole.expectations


def test_expected_ratings_answer_as_the_set_of_their_keys_does():
    from selectit.checks.ratings import ExpectedRatings, expected_keys, rating_key

    expected = ExpectedRatings(frozenset({"a", "b"}), ("r1", "r2"), 3)
    keys = expected_keys({"a", "b"}, ["r1", "r2"], 3)
    assert expected.keys() == keys and len(expected) == len(keys) == 12
    for parts in [("a", "r1", 0), ("b", "r2", 2), ("a", "r1", 3), ("c", "r1", 0), ("a", "r3", 1), ("a", "r1", None)]:
        assert expected.expects(*parts) == (rating_key(*parts) in keys)


def test_mlflow_dataset_record_from_the_head_equals_the_whole_tables(monkeypatch):
    import mlflow
    import pandas as pd

    from selectit.tracking.runs import head_digest

    monkeypatch.setattr("mlflow.data.digest_utils.MAX_ROWS", 20)  # MLflow hashes the first 20 rows
    n = 27
    full = pd.DataFrame({"id": [f"{i:04x}" for i in range(n)], "text": [f"row {i}" * (i % 3) for i in range(n)]})
    whole = mlflow.data.from_pandas(full, source="/data/x", name="x").to_dict()
    head = full.head(20)
    from_head = mlflow.data.from_pandas(head, source="/data/x", name="x", digest=head_digest(head, n)).to_dict()
    assert from_head["digest"] == whole["digest"] and from_head["schema"] == whole["schema"]
    assert head_digest(full.head(21), n) == whole["digest"]  # rows past the sample are not hashed
    assert head_digest(head, n + 1) != whole["digest"]  # the row count is
