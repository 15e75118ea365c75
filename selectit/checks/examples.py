"""The ``validate`` stage: a Great Expectations suite over the examples.

`validate_examples` puts the examples into a pandas DataFrame and runs the
suite `examples_suite` declares over it (see `selectit.checks.suite`).
Expectations come in two levels:

* dataset-level (the frame's schema: columns present, texts are strings and
  not null): any failure raises `ValidationFailed`, since the data is not what
  the rest of the pipeline expects;
* row-level (too little text, repeated id, near-duplicate content, too long,
  bad characters): every row that fails one or more of them becomes a
  `Reject` whose reason lists each failed check. If more than
  ``max_reject_fraction`` of the rows fail, the dataset fails.

The rows that failed a check are found from GX's COMPLETE result format,
indexed by a ``position`` column (the row's position in the input), so GX,
not a second implementation in Python, decides which rows fail. For the two
uniqueness checks GX flags every member of a group of equal values; the first
member (in input order) is kept and only the later ones are rejected.

With ``docs_dir`` the HTML Data Docs (index, suite page and validation page)
are written straight into ``docs_dir``; nothing is written anywhere else.

`validate_record_file` runs the same suite over a records file without holding
its examples: the frame (the texts the checks read, once) is built as the file
is read, and only the examples that fail a check are read back afterwards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selectit.checks.suite import DATASET, ROW, Expectation, Outcome, SuiteRun, failed_rows, rows_text, run_suite
from selectit.config import ValidateConfig
from selectit.core.errors import ValidationFailed
from selectit.core.records import Example, Reject, iter_example_records

if TYPE_CHECKING:
    import pandas as pd

SUITE_NAME = "selectit_examples"
DOCS_SITE_NAME = "selectit_validation"
TEXT_COLUMNS = ("instruction", "input", "output")
STRING_COLUMNS = ("id", *TEXT_COLUMNS, "source")
# The frame's columns: the example's fields, its position in the input (the
# index GX reports failing rows by) and two helper columns.
COLUMNS = ("id", "instruction", "input", "output", "source", "row", "position", "total_chars", "content_key")
# U+FFFD (a decoding error upstream) and C0 controls other than \t \n \r.
BAD_CHARS_REGEX = r"[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f]"
# Lone surrogates (a JSON "\ud800" escape) cannot be encoded as UTF-8, and pandas
# fails on them when GX fingerprints the frame; the frame carries U+FFFD instead,
# so the encoding check rejects the row, and the reason names the real character.
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_BAD_CHARS = re.compile(BAD_CHARS_REGEX[:-1] + r"\ud800-\udfff]")


@dataclass
class ValidationResult:
    valid: list[Example]  # in input order
    rejects: list[Reject]  # one per failing row; reason lists every failed check
    expectations: list[dict]  # one per expectation: expectation, column, success, unexpected_count
    docs_index: Path | None = None  # the Data Docs index.html if docs_dir was given


def normalised_content(instruction: str, input: str, output: str) -> str:
    """Lowercase, whitespace-collapsed content: equal for near-duplicates."""
    return "\x1f".join(" ".join(text.split()).lower() for text in (instruction, input, output))


def _content_key(example: Example) -> str:
    texts = [getattr(example, name) for name in TEXT_COLUMNS]
    if not all(isinstance(text, str) for text in texts):
        return ""  # the schema checks report the bad value
    digest = hashlib.sha256(normalised_content(*texts).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


def _total_chars(example: Example) -> int:
    return sum(len(text) for text in (example.instruction, example.input, example.output) if isinstance(text, str))


def cut_to_fit(example: Example, max_chars: int) -> Example:
    """The example with its response cut so that instruction + input + response hold at most
    `max_chars` characters (its id stays: it names the example as ingested). Unchanged when it
    fits, or when the instruction and input alone do not: only a response can be cut, and
    the length check then rejects the example."""
    texts = (example.instruction, example.input, example.output)
    if not all(isinstance(text, str) for text in texts):  # the schema checks reject it
        return example
    room = max_chars - len(example.instruction) - len(example.input)
    if len(example.output) <= room or room < 1:
        return example
    return dataclasses.replace(example, output=example.output[:room])


def _frame_value(value: Any) -> Any:
    if isinstance(value, str) and _SURROGATES.search(value):
        return _SURROGATES.sub("\ufffd", value)
    return value


def _frame(examples: Iterable[Example]) -> pd.DataFrame:
    """The frame the suite runs over, built in one pass: an iterator of examples is never held."""
    import pandas as pd

    values: dict[str, list] = {name: [] for name in (*STRING_COLUMNS, "row", "total_chars", "content_key")}
    for e in examples:
        for name in STRING_COLUMNS:
            values[name].append(_frame_value(getattr(e, name)))
        values["row"].append(e.row)
        values["total_chars"].append(_total_chars(e))
        values["content_key"].append(_content_key(e))
    # Text columns stay object dtype so the type expectations look at every
    # value (pandas 3 would infer a string dtype and GX would check only that).
    data: dict[str, pd.Series] = {name: pd.Series(values.pop(name), dtype=object) for name in STRING_COLUMNS}
    data["row"] = pd.Series(values.pop("row"), dtype="int64")
    data["position"] = pd.Series(range(len(data["id"])), dtype="int64")
    data["total_chars"] = pd.Series(values.pop("total_chars"), dtype="int64")
    data["content_key"] = pd.Series(values.pop("content_key"), dtype=object)
    return pd.DataFrame({name: data[name] for name in COLUMNS})


# How a failure reads: per suite for the schema, per row (example, column, the
# kept first of its group) for the row-level checks.


def _where(source: Any, row: Any) -> str:
    return f"{source} row {row}"


def _schema_failure(outcome: Outcome) -> str:
    return failed_rows(outcome, lambda first: _where(first["source"], first["row"]))


def _too_few_chars(min_chars: int, example: Example, column: str, first: Example | None) -> str:
    return f"{len(''.join(getattr(example, column).split()))} non-space characters, fewer than {min_chars}"


def _repeated_id(example: Example, column: str, first: Example) -> str:
    return f"id {example.id} already used by {_where(first.source, first.row)}"


def _near_duplicate(example: Example, column: str, first: Example) -> str:
    return f"same content as {_where(first.source, first.row)} up to case and whitespace"


def _too_long(max_chars: int, example: Example, column: str, first: Example | None) -> str:
    prompt = _total_chars(example) - (len(example.output) if isinstance(example.output, str) else 0)
    return (
        f"{prompt} characters in instruction + input, above the limit of {max_chars} "
        "(a long response is cut to fit, an instruction is not)"
    )


def _bad_character(example: Example, column: str, first: Example | None) -> str:
    found = _BAD_CHARS.search(getattr(example, column))
    char = f"U+{ord(found.group()):04X}" if found else "a forbidden character"
    return f"contains {char} at offset {found.start() if found else '?'}"


def examples_suite(cfg: ValidateConfig) -> list[Expectation]:
    """The validate stage's expectations, in the order their results are reported."""
    return _schema_checks() + _content_checks(cfg)


def _schema_checks() -> list[Expectation]:
    """Dataset-level: the frame's columns, and a string in every text and id field."""
    return [
        # Schema: the frame has exactly the columns the checks below read.
        Expectation(
            "columns",
            DATASET,
            "ExpectTableColumnsToMatchSet",
            {"column_set": list(COLUMNS), "exact_match": True},
            "Guards the frame's schema: every expected column and no other.",
            _schema_failure,
        ),
        *(
            entry
            for column in STRING_COLUMNS
            for entry in (
                # Schema: a missing value would slip past every per-value check.
                Expectation(
                    f"not_null:{column}",
                    DATASET,
                    "ExpectColumnValuesToNotBeNull",
                    {"column": column},
                    f"Guards against a missing {column}.",
                    _schema_failure,
                ),
                # Schema: texts and ids are strings, as every later stage assumes.
                Expectation(
                    f"type:{column}",
                    DATASET,
                    "ExpectColumnValuesToBeOfType",
                    {"column": column, "type_": "str"},
                    f"Guards that {column} is a string.",
                    _schema_failure,
                ),
            )
        ),
    ]


def _content_checks(cfg: ValidateConfig) -> list[Expectation]:
    """Row-level: each example long enough, unique (by id and by content), within the
    length budget and cleanly encoded; a row that fails one is rejected."""
    return [
        *(
            Expectation(
                f"min_chars:{column}",
                ROW,
                "ExpectColumnValuesToMatchRegex",
                {"column": column, "regex": rf"^\s*(?:\S\s*){{{cfg.min_chars}}}"},
                f"Guards against an empty or near-empty {column}: at least {cfg.min_chars} non-space characters.",
                partial(_too_few_chars, cfg.min_chars),
            )
            for column in ("instruction", "output")
        ),
        # Unique ids: a repeated id would make scores ambiguous (the first is kept).
        Expectation(
            "unique:id",
            ROW,
            "ExpectColumnValuesToBeUnique",
            {"column": "id"},
            "Guards against two rows sharing an id; the first is kept.",
            _repeated_id,
            keep_first=True,
        ),
        Expectation(
            "unique:content_key",
            ROW,
            "ExpectColumnValuesToBeUnique",
            {"column": "content_key"},
            "Guards against near-duplicates: a hash of instruction, input and output, "
            "lowercased with whitespace collapsed; the first is kept.",
            _near_duplicate,
            keep_first=True,
        ),
        Expectation(
            "max_chars",
            ROW,
            "ExpectColumnValuesToBeBetween",
            {"column": "total_chars", "min_value": 0, "max_value": cfg.max_chars},
            f"Guards the length budget: instruction + input + output <= {cfg.max_chars} characters "
            "(a longer response is cut to fit first, and flagged).",
            partial(_too_long, cfg.max_chars),
        ),
        *(
            Expectation(
                f"encoding:{column}",
                ROW,
                "ExpectColumnValuesToNotMatchRegex",
                {"column": column, "regex": BAD_CHARS_REGEX},
                f"Guards {column}'s text encoding: no U+FFFD and no control characters "
                "other than tab, newline and carriage return.",
                _bad_character,
            )
            for column in TEXT_COLUMNS
        ),
    ]


def _row_reasons(outcomes: list[Outcome], examples: Sequence[Example] | Mapping[int, Example]) -> dict[int, list[str]]:
    """Map position -> failed row-level checks; record each check's rejected_count.

    `examples` gives the example at a position: every one, or those that failed a check."""
    reasons: dict[int, list[str]] = {}
    for outcome in outcomes:
        entry = outcome.expectation
        if entry.level != ROW:
            continue
        kept: dict[Any, Example] = {}  # keep_first: value -> the first row that has it
        rejected = 0
        for position, value in zip(outcome.positions, outcome.rows[entry.column], strict=True):
            if entry.keep_first and value not in kept:
                kept[value] = examples[position]  # the first of a group of equal values stays
                continue
            detail = entry.describe(examples[position], entry.column, kept.get(value))
            reasons.setdefault(position, []).append(f"{outcome.label}: {detail}")
            rejected += 1
        outcome.summary["rejected_count"] = rejected
    return reasons


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.3g}%"


def validate_examples(
    examples: Sequence[Example], cfg: ValidateConfig, docs_dir: Path | None = None
) -> ValidationResult:
    """Run the suite; return the valid examples (input order) and one reject per failing row.

    Raises `ValidationFailed` when there are no examples, when a dataset-level
    expectation fails, or when more than ``cfg.max_reject_fraction`` of the
    rows fail row-level expectations. The Data Docs are written before that, so
    the report of a failed run can be opened too (its path is on the exception).
    """
    examples = [cut_to_fit(e, cfg.max_chars) for e in examples]
    run = _run(_frame(examples), cfg, docs_dir)
    reasons = _judge(run, examples, len(examples), cfg)
    valid = [example for position, example in enumerate(examples) if position not in reasons]
    rejects = [_reject(examples[position], reasons[position]) for position in sorted(reasons)]
    return ValidationResult(valid=valid, rejects=rejects, expectations=run.summaries, docs_index=run.docs_index)


@dataclass
class RecordsValidation:
    """What `validate_record_file` found: the rejects, and the rest by position and id."""

    examples_in: int
    rejects: list[Reject]  # one per failing row, in input order
    rejected: set[int]  # their positions in the file
    valid_ids: list[str]  # the ids of the other examples, in input order
    expectations: list[dict]  # as ValidationResult.expectations
    docs_index: Path | None = None


def validate_record_file(path: Path, cfg: ValidateConfig, docs_dir: Path | None = None) -> RecordsValidation:
    """`validate_examples` over a records file (`write_example_records`), with the same checks,
    failures and Data Docs, holding no example: the frame is built as the file is read,
    and the examples that fail a check are read back for their rejects."""
    frame = _frame(cut_to_fit(e, cfg.max_chars) for e in iter_example_records(path))
    run = _run(frame, cfg, docs_dir)
    failed = {
        position for outcome in run.outcomes if outcome.expectation.level == ROW for position in outcome.positions
    }
    at = {
        position: cut_to_fit(e, cfg.max_chars)
        for position, e in enumerate(iter_example_records(path))
        if position in failed
    }
    reasons = _judge(run, at, len(frame), cfg)
    ids = frame["id"].tolist()
    return RecordsValidation(
        examples_in=len(frame),
        rejects=[_reject(at[position], reasons[position]) for position in sorted(reasons)],
        rejected=set(reasons),
        valid_ids=[example_id for position, example_id in enumerate(ids) if position not in reasons],
        expectations=run.summaries,
        docs_index=run.docs_index,
    )


def _run(frame: pd.DataFrame, cfg: ValidateConfig, docs_dir: Path | None) -> SuiteRun:
    """The suite over the frame; raises when there is no row or a dataset-level check fails."""
    if frame.empty:
        raise ValidationFailed("validation failed: there are no examples to validate")
    run = run_suite(
        frame,
        examples_suite(cfg),
        suite_name=SUITE_NAME,
        asset_name="examples",
        docs_site=DOCS_SITE_NAME,
        docs_dir=docs_dir,
    )
    for outcome in run.outcomes:
        outcome.summary["level"] = outcome.expectation.level

    run.fail_on_dataset_level(ValidationFailed, "validation failed: the data does not have the expected schema: ")
    return run


def _judge(
    run: SuiteRun, examples: Sequence[Example] | Mapping[int, Example], n: int, cfg: ValidateConfig
) -> dict[int, list[str]]:
    """Position -> why that row is rejected; raises when too many rows are."""
    reasons = _row_reasons(run.outcomes, examples)
    n_failed = len(reasons)
    if n_failed > cfg.max_reject_fraction * n:
        rejected = {
            outcome.label: outcome.summary["rejected_count"]
            for outcome in run.outcomes
            if outcome.expectation.level == ROW
        }
        worst = max(rejected.values())
        names = " and ".join(label for label, count in rejected.items() if count == worst)
        run.fail(
            ValidationFailed,
            f"validation failed: {n_failed} of {n} rows ({_pct(n_failed / n)}) fail row-level "
            f"checks, above the limit of {_pct(cfg.max_reject_fraction)}; worst: {names} "
            f"failed for {rows_text(worst)}",
        )

    return reasons


def _reject(example: Example, reasons: list[str]) -> Reject:
    return Reject(example.source, example.row, None, "validation: " + "; ".join(reasons), example.raw)
