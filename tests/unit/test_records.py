import gzip
import json
from pathlib import Path

import pytest
from helpers import ALPACA_SAMPLE as SAMPLE

from selectit.core.errors import InputError
from selectit.core.records import Example, Reject, example_id, write_rejects
from selectit.ingest.formats import read_examples

ALPACA_ROWS = [
    {"instruction": "Name a colour.", "input": "", "output": "Blue."},
    {"instruction": "Translate to French.", "input": "cat", "output": "chat", "extra": 1},
    {"instruction": "Say hi", "output": "Hi!"},  # no input at all
]


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def reasons(result) -> list[str]:
    return [r.reason for r in result.rejects]


# --- formats -----------------------------------------------------------------


def test_alpaca_json_list(tmp_path):
    path = write_json(tmp_path / "a.json", ALPACA_ROWS)
    result = read_examples([path])
    assert result.rejects == [] and result.n_duplicates == 0
    assert [e.instruction for e in result.examples] == [r["instruction"] for r in ALPACA_ROWS]
    assert [e.input for e in result.examples] == ["", "cat", ""]
    first = result.examples[1]
    assert first.format == "alpaca" and first.row == 1 and first.source == str(path)
    assert first.raw == ALPACA_ROWS[1]  # extra keys are kept for writing back
    assert first.id == example_id("Translate to French.", "cat", "chat")


def test_alpaca_jsonl_with_blank_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text("\n" + json.dumps(ALPACA_ROWS[0]) + "\n\n" + json.dumps(ALPACA_ROWS[1]) + "\n")
    result = read_examples([path])
    assert [e.row for e in result.examples] == [0, 1]  # rows count non-blank lines only
    assert [e.output for e in result.examples] == ["Blue.", "chat"]


def test_gzipped_jsonl_with_and_without_suffix(tmp_path):
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in ALPACA_ROWS).encode())
    (tmp_path / "a.jsonl.gz").write_bytes(data)
    (tmp_path / "noext").write_bytes(data)  # detected by the gzip magic bytes
    for name in ("a.jsonl.gz", "noext"):
        result = read_examples([tmp_path / name])
        assert [e.output for e in result.examples] == ["Blue.", "chat", "Hi!"]


def test_null_input_counts_as_empty_and_text_is_not_stripped(tmp_path):
    path = write_json(tmp_path / "a.json", [{"instruction": "  Hi ", "input": None, "output": "Yo\n"}])
    (example,) = read_examples([path]).examples
    assert (example.instruction, example.input, example.output) == ("  Hi ", "", "Yo\n")
    assert example.id != example_id("Hi", "", "Yo")


def test_sharegpt_and_roles(tmp_path):
    rows = [
        {"conversations": [{"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"}]},
        {
            "conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "user", "value": "Q2"},
                {"from": "chatgpt", "value": "A2"},
            ]
        },
    ]
    result = read_examples([write_json(tmp_path / "s.json", rows)])
    assert [(e.instruction, e.input, e.output, e.format) for e in result.examples] == [
        ("Q1", "", "A1", "sharegpt"),
        ("Q2", "Be brief.", "A2", "sharegpt"),
    ]


def test_openai_messages(tmp_path):
    row = {
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "A"},
        ]
    }
    (example,) = read_examples([write_jsonl(tmp_path / "o.jsonl", [row])]).examples
    assert (example.instruction, example.input, example.output) == ("Q", "S", "A")
    assert example.format == "openai" and example.raw == row


def test_same_content_in_three_formats_same_id(tmp_path):
    alpaca = {"instruction": "Q", "input": "ctx", "output": "A"}
    sharegpt = {
        "conversations": [
            {"from": "system", "value": "ctx"},
            {"from": "human", "value": "Q"},
            {"from": "gpt", "value": "A"},
        ]
    }
    openai = {
        "messages": [
            {"role": "system", "content": "ctx"},
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "A"},
        ]
    }
    ids = set()
    for i, row in enumerate((alpaca, sharegpt, openai)):
        (example,) = read_examples([write_jsonl(tmp_path / f"{i}.jsonl", [row])]).examples
        ids.add(example.id)
    assert ids == {example_id("Q", "ctx", "A")}
    assert len(example_id("Q", "ctx", "A")) == 16


def test_multi_turn_rendering(tmp_path):
    row = {
        "messages": [
            {"role": "system", "content": "Sys"},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Joke?"},
            {"role": "assistant", "content": "No."},
        ]
    }
    (example,) = read_examples([write_jsonl(tmp_path / "m.jsonl", [row])]).examples
    assert example.instruction == "User: Hi\n\nAssistant: Hello\n\nUser: Joke?"
    assert example.input == "Sys" and example.output == "No."


# --- ids -----------------------------------------------------------------------


def test_id_stable_across_reads_and_files(tmp_path):
    a = write_json(tmp_path / "a.json", ALPACA_ROWS)
    b = write_jsonl(tmp_path / "b.jsonl", ALPACA_ROWS)
    ids_a1 = [e.id for e in read_examples([a]).examples]
    ids_a2 = [e.id for e in read_examples([a]).examples]
    ids_b = [e.id for e in read_examples([b]).examples]
    assert ids_a1 == ids_a2 == ids_b
    assert len(set(ids_a1)) == 3


def test_id_is_canonical_sha256():
    import hashlib

    expected = hashlib.sha256('["é","",""]'.encode()).hexdigest()[:16]
    assert example_id("é", "", "") == expected


# --- rejects -------------------------------------------------------------------


def test_broken_json_line_is_rejected_and_rest_read(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(ALPACA_ROWS[0]) + "\n\n{not json\n" + json.dumps(ALPACA_ROWS[1]) + "\n")
    result = read_examples([path])
    assert [e.output for e in result.examples] == ["Blue.", "chat"]
    (reject,) = result.rejects
    assert reject.line == 3 and reject.row == 1 and reject.raw == "{not json"
    assert reject.reason.startswith("invalid JSON:")


def test_a_json_line_that_is_not_utf8_is_rejected_alone_and_the_rest_read(tmp_path):
    path = tmp_path / "mixed.jsonl"
    good = [json.dumps(r).encode() for r in ALPACA_ROWS[:2]]
    bad = '{"instruction": "caf\xe9", "output": "x"}'.encode("latin-1")
    path.write_bytes(b"\n".join([good[0], bad, good[1]]) + b"\n")
    result = read_examples([path])
    assert [e.output for e in result.examples] == ["Blue.", "chat"]
    (reject,) = result.rejects
    assert reject.line == 2 and reject.row == 1
    assert reject.reason == "not valid UTF-8 (invalid continuation byte at byte 20 of the line)"
    assert reject.raw == '{"instruction": "caf\\xe9", "output": "x"}'  # kept, the bad byte escaped


def test_openai_content_as_a_list_of_text_parts(tmp_path):
    parts = [{"type": "text", "text": "Q1"}, {"type": "text", "text": "Q2"}]
    rows = [
        {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "A"}]},
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Q"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "A"}]},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                {"role": "assistant", "content": "A"},
            ]
        },
    ]
    result = read_examples([write_jsonl(tmp_path / "parts.jsonl", rows)])
    first, second = result.examples
    assert (first.instruction, first.output) == ("Q1\nQ2", "A")
    plain = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
    assert second.id == read_examples([write_jsonl(tmp_path / "plain.jsonl", [plain])]).examples[0].id
    assert reasons(result) == ["messages[0].content[0] is a 'image_url' part; only text parts can be rated"]


def test_rows_under_one_key_are_named_in_the_error_and_read_when_the_key_is_given(tmp_path):
    path = write_json(tmp_path / "wrapped.json", {"version": 2, "data": ALPACA_ROWS})
    with pytest.raises(InputError, match="rows seem to sit under 'data': set ingest.rows_key: data"):
        read_examples([path])
    assert [e.raw for e in read_examples([path], rows_key="data").examples] == ALPACA_ROWS
    with pytest.raises(InputError, match="rows_key is 'rows', but the file is not one JSON object with a list there"):
        read_examples([path], rows_key="rows")


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"instruction": "Q"}, "missing field 'output'"),
        ({"output": "A"}, "missing field 'instruction'"),
        ({"instruction": "  ", "output": "A"}, "field 'instruction' is empty"),
        ({"instruction": "Q", "output": ""}, "field 'output' is empty"),
        ({"instruction": "Q", "input": 3, "output": "A"}, "field 'input' must be a string, got int"),
        ({"instruction": ["Q"], "output": "A"}, "field 'instruction' must be a string, got list"),
        (42, "row is not a JSON object"),
        ({"conversations": [{"from": "human", "value": "Q"}]}, "conversation does not end with an assistant turn"),
        (
            {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": " "}]},
            "conversation does not end with an assistant turn",
        ),
        (
            {"conversations": [{"from": "robot", "value": "Q"}, {"from": "gpt", "value": "A"}]},
            "conversations[0]: unknown role 'robot'",
        ),
        (
            {"conversations": [{"from": "human", "value": ""}, {"from": "gpt", "value": "A"}]},
            "conversations[0]: user turn is empty",
        ),
        ({"conversations": "hi"}, "field 'conversations' must be a list, got str"),
        (
            {"messages": [{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"}]},
            "conversation has no user turn",
        ),
        (
            {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": None}]},
            "messages[1]: field 'content' must be a string, got null",
        ),
        (
            {"messages": [{"role": "tool", "content": "Q"}, {"role": "assistant", "content": "A"}]},
            "messages[0]: unknown role 'tool'",
        ),
        ({"foo": 1}, "unknown format: expected keys instruction/output, conversations or messages"),
    ],
)
def test_row_rejects(tmp_path, row, reason):
    path = write_json(tmp_path / "a.json", [ALPACA_ROWS[0], row])
    result = read_examples([path])
    assert len(result.examples) == 1
    assert result.rejects == [Reject(str(path), 1, None, reason, row)]


def test_duplicates_across_files(tmp_path):
    a = write_json(tmp_path / "a.json", ALPACA_ROWS)
    b = write_jsonl(tmp_path / "b.jsonl", [{"instruction": "new", "output": "x"}, ALPACA_ROWS[2]])
    result = read_examples([a, b])
    assert [e.source for e in result.examples] == [str(a)] * 3 + [str(b)]
    assert result.n_duplicates == 1
    (dup,) = result.rejects
    assert (dup.source, dup.row, dup.line) == (str(b), 1, 2)
    assert dup.reason == f"duplicate of {a} row 2"


def test_duplicate_within_file_counted_and_other_rejects_not(tmp_path):
    path = write_json(tmp_path / "a.json", [ALPACA_ROWS[0], {"instruction": "Q"}, ALPACA_ROWS[0]])
    result = read_examples([path])
    assert len(result.examples) == 1 and result.n_duplicates == 1
    assert [r.row for r in result.rejects] == [1, 2]


# --- file-level errors ---------------------------------------------------------


def test_unknown_format_file_raises(tmp_path):
    path = write_jsonl(tmp_path / "weird.jsonl", [{"prompt": "a", "completion": "b"}] * 5)
    with pytest.raises(InputError, match="weird.jsonl") as info:
        read_examples([path])
    assert "alpaca" in str(info.value) and "sharegpt" in str(info.value)


def test_not_json_at_all_raises(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("instruction,output\nQ,A\n")
    with pytest.raises(InputError, match="table.csv.*invalid JSON"):
        read_examples([path])


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("empty.json", b"", "is empty"),
        ("blank.jsonl", b"  \n\n", "is empty"),
        ("latin1.jsonl", '{"instruction": "caf\xe9", "output": "x"}\n'.encode("latin-1"), "UTF-8"),
        ("latin1.json", '[{"instruction": "caf\xe9", "output": "x"}]'.encode("latin-1"), "not valid UTF-8"),
        ("broken.json", b'[\n  {"instruction": "Q", "output": "A"},\n  {"instr', "line 3"),
        ("fake.jsonl.gz", b'{"instruction": "Q", "output": "A"}\n', "gzip"),
    ],
)
def test_bad_files_raise_naming_the_file(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=match) as info:
        read_examples([path])
    assert str(path) in str(info.value)


def test_missing_file_raises(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(InputError, match="nope.json"):
        read_examples([path])


def test_single_pretty_printed_object_is_one_row(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(ALPACA_ROWS[0], indent=2))
    (example,) = read_examples([path]).examples
    assert example.raw == ALPACA_ROWS[0] and example.row == 0


# --- writing -------------------------------------------------------------------


def test_write_rejects(tmp_path):
    rejects = [
        Reject("a.jsonl", 1, 3, "invalid JSON: x", "{bad"),
        Reject("b.json", 0, None, "missing field 'output'", {"instruction": "Q"}),
    ]
    out = tmp_path / "deep" / "rejects.jsonl"
    write_rejects(rejects, out)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"source": "a.jsonl", "row": 1, "line": 3, "reason": "invalid JSON: x", "raw": "{bad"},
        {"source": "b.json", "row": 0, "line": None, "reason": "missing field 'output'", "raw": {"instruction": "Q"}},
    ]


def test_examples_are_hashable():
    example = Example("id", "i", "", "o", "s", 0, "alpaca", {"instruction": "i"})
    assert example in {example}


# --- real data -----------------------------------------------------------------


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"sample data not found at {SAMPLE}")
def test_real_alpaca_gpt4_sample():
    result = read_examples([SAMPLE])
    assert len(result.examples) + len(result.rejects) == 999
    assert len(result.examples) > 900
    ids = [e.id for e in result.examples]
    assert len(ids) == len(set(ids))
    assert all(e.format == "alpaca" for e in result.examples)


def test_unpaired_surrogate_is_a_row_reject(tmp_path):
    path = tmp_path / "surrogate.jsonl"
    path.write_text('{"instruction": "a \\ud83d b", "output": "x"}\n{"instruction": "ok", "output": "fine"}\n')
    result = read_examples([path])
    assert [e.instruction for e in result.examples] == ["ok"]
    (reject,) = result.rejects
    assert reject.line == 1 and "unpaired surrogate U+D83D" in reject.reason
