"""The ``validate`` stage: a Great Expectations suite over the examples.

`validate_examples` puts the examples into a pandas DataFrame and runs one GX
(1.x) expectation suite over it in an ephemeral, in-memory Data Context.
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

With ``docs_dir`` the suite runs through a Checkpoint whose
``UpdateDataDocsAction`` writes the HTML Data Docs (index, suite page and
validation page) straight into ``docs_dir`` through a filesystem store
backend; nothing is written anywhere else.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from selectit.errors import ValidationFailed
from selectit.checks.suite import import_gx, paired_outcomes, rows_text, run_suite
from selectit.ingest.records import Example, Reject

if TYPE_CHECKING:
    import pandas as pd

SUITE_NAME = "selectit_examples"
DOCS_SITE_NAME = "selectit_validation"
TEXT_COLUMNS = ("instruction", "input", "output")
STRING_COLUMNS = ("id", *TEXT_COLUMNS, "source")
# The frame's columns: the example's fields, its position in the input (the
# index GX reports failing rows by) and two helper columns.
COLUMNS = ("id", "instruction", "input", "output", "source", "row", "position",
           "total_chars", "content_key")
# U+FFFD (a decoding error upstream) and C0 controls other than \t \n \r.
BAD_CHARS_REGEX = r"[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f]"
# Lone surrogates (a JSON "\ud800" escape) cannot be encoded as UTF-8, and pandas
# fails on them when GX fingerprints the frame; the frame carries U+FFFD instead,
# so the encoding check rejects the row, and the reason names the real character.
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_BAD_CHARS = re.compile(BAD_CHARS_REGEX[:-1] + r"\ud800-\udfff]")

DATASET, ROW = "dataset", "row"


@dataclass(frozen=True)
class ValidationSettings:
    min_chars: int              # instruction and output must have at least this many non-space characters
    max_chars: int              # instruction + input + output must not exceed this many characters
    max_reject_fraction: float  # if more than this share of rows fail row-level checks, the dataset fails

    def __post_init__(self) -> None:
        if self.min_chars < 0:
            raise ValueError(f"min_chars must be >= 0, got {self.min_chars}")
        if self.max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, got {self.max_chars}")
        if not 0.0 <= self.max_reject_fraction <= 1.0:
            raise ValueError(f"max_reject_fraction must be in [0, 1], got {self.max_reject_fraction}")


@dataclass
class ValidationResult:
    valid: list[Example]          # in input order
    rejects: list[Reject]         # one per failing row; reason lists every failed check
    expectations: list[dict]      # one per expectation: expectation, column, success, unexpected_count
    docs_index: Path | None = None  # the Data Docs index.html if docs_dir was given


@dataclass
class _Check:
    """One expectation of the suite and how selectit reads its result."""

    key: str                      # unique name, stored in the expectation's meta
    level: str                    # DATASET or ROW
    expectation: Any              # the GX expectation
    column: str | None
    keep_first: bool = False      # uniqueness: the first of a group is kept
    failed: list[tuple[int, Any]] = field(default_factory=list)  # (position, value)

    @property
    def label(self) -> str:
        name = self.expectation.expectation_type
        return f"{name}({self.column})" if self.column else name


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
    return sum(len(text) for text in (example.instruction, example.input, example.output)
               if isinstance(text, str))


def _frame_value(value: Any) -> Any:
    if isinstance(value, str) and _SURROGATES.search(value):
        return _SURROGATES.sub("\ufffd", value)
    return value


def _frame(examples: Sequence[Example]) -> "pd.DataFrame":
    import pandas as pd

    # Text columns stay object dtype so the type expectations look at every
    # value (pandas 3 would infer a string dtype and GX would check only that).
    data: dict[str, pd.Series] = {
        name: pd.Series([_frame_value(getattr(e, name)) for e in examples], dtype=object)
        for name in STRING_COLUMNS
    }
    data["row"] = pd.Series([e.row for e in examples], dtype="int64")
    data["position"] = pd.Series(range(len(examples)), dtype="int64")
    data["total_chars"] = pd.Series([_total_chars(e) for e in examples], dtype="int64")
    data["content_key"] = pd.Series([_content_key(e) for e in examples], dtype=object)
    return pd.DataFrame({name: data[name] for name in COLUMNS})


def _checks(gx, settings: ValidationSettings) -> list[_Check]:
    E = gx.expectations
    critical, warning = "critical", "warning"
    checks: list[_Check] = []

    def add(key, level, column, expectation_cls, note, keep_first=False, **kwargs):
        if column is not None:
            kwargs["column"] = column
        expectation = expectation_cls(
            **kwargs, notes=f"{note} ({level}-level)", meta={"selectit_check": key},
            severity=critical if level == DATASET else warning)
        checks.append(_Check(key, level, expectation, column, keep_first))

    # Schema: the frame has exactly the columns the checks below read.
    add("columns", DATASET, None, E.ExpectTableColumnsToMatchSet,
        "Guards the frame's schema: every expected column and no other.",
        column_set=list(COLUMNS), exact_match=True)
    for column in STRING_COLUMNS:
        # Schema: a missing value would slip past every per-value check.
        add(f"not_null:{column}", DATASET, column, E.ExpectColumnValuesToNotBeNull,
            f"Guards against a missing {column}.")
        # Schema: texts and ids are strings, as every later stage assumes.
        add(f"type:{column}", DATASET, column, E.ExpectColumnValuesToBeOfType,
            f"Guards that {column} is a string.", type_="str")

    for column in ("instruction", "output"):
        # Non-empty: at least min_chars characters that are not whitespace.
        add(f"min_chars:{column}", ROW, column, E.ExpectColumnValuesToMatchRegex,
            f"Guards against an empty or near-empty {column}: at least "
            f"{settings.min_chars} non-space characters.",
            regex=rf"^\s*(?:\S\s*){{{settings.min_chars}}}")
    # Unique ids: a repeated id would make scores ambiguous (the first is kept).
    add("unique:id", ROW, "id", E.ExpectColumnValuesToBeUnique,
        "Guards against two rows sharing an id; the first is kept.", keep_first=True)
    # Near-duplicates: same content up to case and whitespace (the first is kept).
    add("unique:content_key", ROW, "content_key", E.ExpectColumnValuesToBeUnique,
        "Guards against near-duplicates: a hash of instruction, input and output, "
        "lowercased with whitespace collapsed; the first is kept.", keep_first=True)
    # Length: instruction + input + output fit the budget.
    add("max_chars", ROW, "total_chars", E.ExpectColumnValuesToBeBetween,
        f"Guards the length budget: instruction + input + output <= {settings.max_chars} "
        "characters.", min_value=0, max_value=settings.max_chars)
    for column in TEXT_COLUMNS:
        # Encoding: no U+FFFD replacement characters, no C0 controls but \t \n \r.
        add(f"encoding:{column}", ROW, column, E.ExpectColumnValuesToNotMatchRegex,
            f"Guards {column}'s text encoding: no U+FFFD and no control characters "
            "other than tab, newline and carriage return.", regex=BAD_CHARS_REGEX)
    return checks


def _read_results(validation, checks: list[_Check]) -> list[tuple[_Check, dict]]:
    """Pair each check with its summary, in the suite's order, and note the failed rows."""
    pairs = []
    for check, outcome in paired_outcomes(validation, checks):
        config = outcome.expectation_config
        details = outcome.result or {}
        check.failed = [(int(item["position"]), item.get(check.column))
                        for item in details.get("unexpected_index_list") or []]
        count = details.get("unexpected_count")
        if count is None:  # a table-level expectation has no per-row count
            count = 0 if outcome.success else 1
        pairs.append((check, {"expectation": config.type, "column": check.column,
                              "success": bool(outcome.success), "unexpected_count": int(count),
                              "level": check.level}))
    order = {check.key: i for i, check in enumerate(checks)}
    return sorted(pairs, key=lambda pair: order[pair[0].key])  # GX groups them by column


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.3g}%"


def _where(example: Example) -> str:
    return f"{example.source} row {example.row}"


def _row_detail(check: _Check, example: Example, first: Example | None,
                settings: ValidationSettings) -> str:
    key = check.key
    if key.startswith("min_chars:"):
        text = getattr(example, check.column)
        return (f"{len(''.join(text.split()))} non-space characters, "
                f"fewer than {settings.min_chars}")
    if key == "unique:id":
        return f"id {example.id} already used by {_where(first)}" if first else "repeated id"
    if key == "unique:content_key":
        return (f"same content as {_where(first)} up to case and whitespace" if first
                else "near-duplicate")
    if key == "max_chars":
        return (f"{_total_chars(example)} characters in instruction + input + output, "
                f"above the limit of {settings.max_chars}")
    if key.startswith("encoding:"):
        found = _BAD_CHARS.search(getattr(example, check.column))
        char = f"U+{ord(found.group()):04X}" if found else "a forbidden character"
        return f"contains {char} at offset {found.start() if found else '?'}"
    return "failed"


def _dataset_failure(pairs: list[tuple[_Check, dict]], examples: Sequence[Example]) -> str | None:
    failed = []
    for check, summary in pairs:
        if check.level != DATASET or summary["success"]:
            continue
        if check.failed:
            failed.append(f"{check.label} failed for {rows_text(summary['unexpected_count'])} "
                          f"(first: {_where(examples[check.failed[0][0]])})")
        else:
            failed.append(f"{check.label} failed")
    if failed:
        return "validation failed: the data does not have the expected schema: " + "; ".join(failed)
    return None


def _row_reasons(pairs: list[tuple[_Check, dict]], examples: Sequence[Example],
                 settings: ValidationSettings) -> dict[int, list[str]]:
    """Map position -> failed row-level checks; record each check's rejected_count."""
    reasons: dict[int, list[str]] = {}
    for check, summary in pairs:
        if check.level != ROW:
            continue
        first_of: dict[Any, int] = {}
        rejected = 0
        for position, value in sorted(check.failed, key=lambda item: item[0]):
            first = None
            if check.keep_first:
                if value not in first_of:  # the first of a group of equal values stays
                    first_of[value] = position
                    continue
                first = examples[first_of[value]]
            detail = _row_detail(check, examples[position], first, settings)
            reasons.setdefault(position, []).append(f"{check.label}: {detail}")
            rejected += 1
        summary["rejected_count"] = rejected
    return reasons


def validate_examples(examples: Sequence[Example], settings: ValidationSettings,
                      docs_dir: Path | None = None) -> ValidationResult:
    """Run the suite; return the valid examples (input order) and one reject per failing row.

    Raises `ValidationFailed` when there are no examples, when a dataset-level
    expectation fails, or when more than ``settings.max_reject_fraction`` of the
    rows fail row-level expectations. The Data Docs are written before that, so
    the report of a failed run can be opened too (its path is on the exception).
    """
    examples = list(examples)
    if not examples:
        raise ValidationFailed("validation failed: there are no examples to validate")
    gx = import_gx()
    checks = _checks(gx, settings)
    validation, index = run_suite(gx, _frame(examples), [c.expectation for c in checks], suite_name=SUITE_NAME,
                                  asset_name="examples", docs_site=DOCS_SITE_NAME, docs_dir=docs_dir)
    pairs = _read_results(validation, checks)
    summaries = [summary for _, summary in pairs]
    docs_note = f" (report: {index})" if index else ""

    message = _dataset_failure(pairs, examples)
    if message:
        raise ValidationFailed(message + docs_note, summaries, index)

    reasons = _row_reasons(pairs, examples, settings)
    n, n_failed = len(examples), len(reasons)
    if n_failed > settings.max_reject_fraction * n:
        rejected = {check.label: summary["rejected_count"] for check, summary in pairs
                    if check.level == ROW}
        worst = max(rejected.values())
        names = " and ".join(label for label, count in rejected.items() if count == worst)
        raise ValidationFailed(
            f"validation failed: {n_failed} of {n} rows ({_pct(n_failed / n)}) fail row-level "
            f"checks, above the limit of {_pct(settings.max_reject_fraction)}; worst: {names} "
            f"failed for {rows_text(worst)}{docs_note}", summaries, index)

    valid = [example for position, example in enumerate(examples) if position not in reasons]
    rejects = []
    for position in sorted(reasons):
        example = examples[position]
        rejects.append(Reject(example.source, example.row, None,
                              "validation: " + "; ".join(reasons[position]), example.raw))
    return ValidationResult(valid=valid, rejects=rejects, expectations=summaries,
                            docs_index=index)
