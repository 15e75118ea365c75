"""The validate stage: GX expectations over examples, rejects with reasons, Data Docs."""

from __future__ import annotations

import json

import pytest

from selectit.checks.examples import SUITE_NAME, ValidationFailed, validate_examples
from selectit.checks.suite import DATASET, Expectation, run_suite
from selectit.config import ValidateConfig
from selectit.core.errors import ParamsError
from selectit.core.records import Example, example_id
from selectit.ingest.formats import read_examples

SETTINGS = ValidateConfig(min_chars=3, max_chars=200, max_reject_fraction=0.5, heldout=0.0, seed=0)


def make(row: int, instruction: str, output: str, input: str = "", id: str | None = None) -> Example:
    raw = {"instruction": instruction, "input": input, "output": output}
    return Example(
        id or example_id(instruction, input, output), instruction, input, output, "data.json", row, "alpaca", raw
    )


def clean_rows(n: int = 8, start: int = 0) -> list[Example]:
    return [
        make(i, f"Name a prime number above {i * 10}.", f"One is {i * 10 + 1}?\tCheck it.\n")
        for i in range(start, start + n)
    ]


def test_clean_data_read_from_a_file_passes(tmp_path):
    rows = [
        {
            "instruction": "Give three tips for staying healthy.",
            "input": "",
            "output": "1. Eat well.\n2. Sleep.\n3. Move.",
        },
        {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
        {"instruction": "Translate to French.", "input": "Good evening", "output": "Bonsoir"},
    ]
    path = tmp_path / "data.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    examples = read_examples([path]).examples

    result = validate_examples(examples, SETTINGS)

    assert result.valid == examples
    assert result.rejects == []
    assert result.docs_index is None
    assert result.expectations and all(e["success"] for e in result.expectations)
    assert all(e["unexpected_count"] == 0 for e in result.expectations)
    checked = {(e["expectation"], e["column"]) for e in result.expectations}
    assert ("expect_column_values_to_be_unique", "id") in checked
    assert ("expect_column_values_to_be_of_type", "output") in checked


@pytest.mark.parametrize(
    "bad, label, detail",
    [
        (
            make(99, "Say hi.", "   \n "),
            "expect_column_values_to_match_regex(output)",
            "0 non-space characters, fewer than 3",
        ),
        (make(99, "H i", "Hello there."), "expect_column_values_to_match_regex(instruction)", "2 non-space characters"),
        (
            make(99, "word " * 60, "A long instruction."),
            "expect_column_values_to_be_between(total_chars)",
            "300 characters in instruction + input, above the limit of 200 (a long response is cut to fit",
        ),
        (
            make(99, "Fix the text.", "Fixed.", input="caf\ufffd"),
            "expect_column_values_to_not_match_regex(input)",
            "contains U+FFFD at offset 3",
        ),
        (
            make(99, "Fix the text.", "Fi\x00xed."),
            "expect_column_values_to_not_match_regex(output)",
            "contains U+0000 at offset 2",
        ),
        # A lone surrogate (from a JSON "\ud83d" escape) cannot be written as UTF-8.
        (
            make(99, "Fix the \ud83d text.", "Fixed.", id="lone-surrogate"),
            "expect_column_values_to_not_match_regex(instruction)",
            "contains U+D83D at offset 8",
        ),
    ],
    ids=["empty-output", "short-instruction", "too-long", "replacement-char", "control-char", "lone-surrogate"],
)
def test_each_row_level_check_rejects_the_bad_row(bad, label, detail):
    examples = clean_rows(4) + [bad] + clean_rows(3, start=4)

    result = validate_examples(examples, SETTINGS)

    assert [r.row for r in result.rejects] == [99]
    reject = result.rejects[0]
    assert reject.reason.startswith("validation: ")
    assert label in reject.reason and detail in reject.reason
    assert reject.source == "data.json" and reject.raw == bad.raw
    assert result.valid == [e for e in examples if e is not bad]
    failed = [e for e in result.expectations if not e["success"]]
    assert [(e["expectation"], e["column"], e["unexpected_count"]) for e in failed] == [
        tuple(label.replace(")", "").split("(")) + (1,)
    ]


def test_reason_lists_every_failed_check():
    bad = make(7, "Bell\x07", "")
    result = validate_examples(clean_rows(4) + [bad], SETTINGS)

    (reject,) = result.rejects
    assert "expect_column_values_to_match_regex(output)" in reject.reason
    assert "expect_column_values_to_not_match_regex(instruction): contains U+0007" in reject.reason
    assert reject.reason.count("; ") == 1


def test_repeated_id_keeps_the_first():
    first = make(10, "Name a colour.", "Blue.", id="same-id")
    second = make(11, "Name a fruit.", "Apple.", id="same-id")
    result = validate_examples(clean_rows(3) + [first, second], SETTINGS)

    assert first in result.valid and second not in result.valid
    (reject,) = result.rejects
    assert reject.row == 11
    assert "expect_column_values_to_be_unique(id): id same-id already used by data.json row 10" in reject.reason
    unique_id = next(
        e
        for e in result.expectations
        if e["column"] == "id" and e["expectation"] == "expect_column_values_to_be_unique"
    )
    assert unique_id["unexpected_count"] == 2 and unique_id["rejected_count"] == 1


def test_near_duplicates_keep_the_first_but_other_outputs_are_fine():
    first = make(20, "Name the capital of France.", "Paris is the capital.")
    near = make(21, "  name the CAPITAL of\nFrance. ", "paris  is the Capital.")
    other_output = make(22, "Name the capital of France.", "It is Paris.")
    other_input = make(23, "Name the capital of France.", "Paris is the capital.", input="Hint: P")
    examples = [first, near, other_output, other_input] + clean_rows(2)

    result = validate_examples(examples, SETTINGS)

    assert near.id != first.id  # not an exact duplicate
    assert [r.row for r in result.rejects] == [21]
    assert (
        "expect_column_values_to_be_unique(content_key): same content as data.json row 20" in result.rejects[0].reason
    )
    assert result.valid == [first, other_output, other_input] + examples[4:]


def test_valid_keeps_input_order():
    rows = clean_rows(6)
    order = [
        rows[4],
        make(50, "x", "Too short instruction."),
        rows[1],
        rows[5],
        make(51, "Empty output.", " "),
        rows[0],
        rows[3],
        rows[2],
    ]

    result = validate_examples(order, SETTINGS)

    assert result.valid == [rows[4], rows[1], rows[5], rows[0], rows[3], rows[2]]
    assert [r.row for r in result.rejects] == [50, 51]


def test_too_many_rejects_fail_the_dataset_naming_the_worst_expectation():
    examples = clean_rows(5) + [make(100 + i, f"Question {i}?", "") for i in range(5)]
    examples[0] = make(0, "Bad\x01", examples[0].output)

    with pytest.raises(ValidationFailed) as caught:
        validate_examples(examples, ValidateConfig(3, 200, max_reject_fraction=0.2, heldout=0.0, seed=0))

    message = str(caught.value)
    assert message.startswith("validation failed: 6 of 10 rows (60%) fail row-level checks, above the limit of 20%")
    assert "worst: expect_column_values_to_match_regex(output) failed for 5 rows" in message
    assert "not_match_regex" not in message.split("worst:")[1]


def test_reject_fraction_at_the_limit_passes():
    examples = clean_rows(4) + [make(100, "Question?", "")]
    result = validate_examples(examples, ValidateConfig(3, 200, max_reject_fraction=0.2, heldout=0.0, seed=0))
    assert len(result.rejects) == 1 and len(result.valid) == 4


def test_empty_input_fails():
    with pytest.raises(ValidationFailed, match="no examples"):
        validate_examples([], SETTINGS)


@pytest.mark.parametrize(
    "value, label",
    [
        (None, "expect_column_values_to_not_be_null(output) failed for 1 row (first: data.json row 9)"),
        (42, "expect_column_values_to_be_of_type(output) failed for 1 row (first: data.json row 9)"),
    ],
)
def test_wrong_schema_fails_the_dataset(value, label):
    bad = Example("bad-id", "Count to three.", "", value, "data.json", 9, "alpaca", {})
    with pytest.raises(ValidationFailed) as caught:
        validate_examples(clean_rows(9) + [bad], ValidateConfig(3, 200, 1.0, 0.0, 0))
    assert "does not have the expected schema" in str(caught.value)
    assert label in str(caught.value)


def test_data_docs_are_written(tmp_path):
    docs = tmp_path / "docs"
    examples = clean_rows(3) + [make(30, "Say hi.", "")]

    result = validate_examples(examples, SETTINGS, docs_dir=docs)

    assert result.docs_index == (docs / "index.html").resolve()
    index = result.docs_index.read_text(encoding="utf-8")
    assert SUITE_NAME in index
    assert (docs / "expectations" / f"{SUITE_NAME}.html").is_file()
    pages = list((docs / "validations").rglob("*.html"))
    assert len(pages) == 1
    page = pages[0].read_text(encoding="utf-8")
    assert SUITE_NAME in page and "must match this regular expression" in page
    assert "Unsuccessful Expectations" in page
    # GX's fingerprint of the batch (a hash of every value, costly on large data) is skipped.
    assert "pandas_data_fingerprint" not in page


def test_a_failed_dataset_still_writes_its_report(tmp_path):
    examples = [make(i, f"Question {i}?", "") for i in range(4)]
    with pytest.raises(ValidationFailed) as caught:
        validate_examples(examples, SETTINGS, docs_dir=tmp_path)
    assert caught.value.docs_index == (tmp_path / "index.html").resolve()
    assert caught.value.docs_index.is_file()
    assert str(caught.value.docs_index) in str(caught.value)


def test_settings_are_checked():
    with pytest.raises(ParamsError, match="max_reject_fraction"):
        ValidateConfig(1, 100, 1.5, 0.0, 0).validate("validate")


def test_an_expectation_gx_cannot_evaluate_is_an_error():
    import pandas as pd

    frame = pd.DataFrame({"position": [0, 1], "id": ["a", "b"]})
    table = [
        Expectation(
            "no_such_column",
            DATASET,
            "ExpectColumnValuesToNotBeNull",
            {"column": "missing"},
            "Guards nothing: the column does not exist.",
            str,
        )
    ]
    with pytest.raises(RuntimeError, match=r"could not evaluate .*\(missing\): .*does not exist"):
        run_suite(frame, table, suite_name="broken", asset_name="rows", docs_site="broken", docs_dir=None)


def test_a_long_response_is_cut_to_fit_and_kept_with_its_id():
    long = make(99, "Write a long text.", "word " * 60)
    result = validate_examples(clean_rows(9) + [long], SETTINGS)
    (kept,) = [e for e in result.valid if e.id == long.id]
    assert not result.rejects and kept.output == long.output[: 200 - len("Write a long text.")]
