"""The texts of every benchmark the evaluate stage can run, and of AlpacaEval's instructions,
read from the offline files of `evaluate.benchmarks_dir` for decontamination.

Each text is named by its benchmark and its place there (`gsm8k/412`,
`mmlu/anatomy/test/3`, `bbh/navigate/17`, `humaneval/HumanEval/5`,
`alpaca_eval/120`), so a reject can say which question an example contains.
MMLU questions carry their four choices: an example that copies a question
usually copies them too, and a question alone is often shorter than one n-gram.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from selectit.core.errors import InputError

# What each benchmark's file is called under benchmarks_dir (the layout of shared/data/benchmarks).
FILES = {
    "mmlu": "mmlu.zip",
    "gsm8k": "gsm8k_test.jsonl",
    "bbh": "bbh",
    "humaneval": "humaneval.jsonl.gz",
    "alpaca_eval": "alpaca_eval_805_davinci003.json",
}
_MMLU_CSV = re.compile(r"data/(dev|val|test)/(\w+)_(dev|val|test)\.csv")


@dataclass(frozen=True)
class BenchmarkText:
    benchmark: str  # mmlu, gsm8k, bbh, humaneval, alpaca_eval
    index: str  # where in the benchmark: subject/split/row, task/row, row or task id
    text: str


def benchmark_files(benchmarks_dir: Path) -> dict[str, Path]:
    """Every benchmark's file or folder; one line naming the key and the file when one is missing."""
    found = {name: Path(benchmarks_dir) / file for name, file in FILES.items()}
    missing = [str(path) for path in found.values() if not path.exists()]
    if missing:
        raise InputError(
            f"evaluate.benchmarks_dir: {benchmarks_dir} lacks {', '.join(missing)} (decontamination reads every "
            "benchmark; set hygiene.decontaminate: false to skip it)"
        )
    return found


def iter_benchmark_texts(benchmarks_dir: Path) -> Iterator[BenchmarkText]:
    files = benchmark_files(benchmarks_dir)
    yield from _mmlu(files["mmlu"])
    yield from _json_lines(files["gsm8k"], "gsm8k", "question")
    yield from _bbh(files["bbh"])
    yield from _json_lines(files["humaneval"], "humaneval", "prompt", id_field="task_id")
    yield from _alpaca_eval(files["alpaca_eval"])


# The fields each row of a benchmark's file must hold as strings for the evaluation to read it
# (lm-eval loads a whole file at once: one broken row fails every question of it).
EVALUATED_FIELDS = {
    "gsm8k": ("question", "answer"),
    "bbh": ("input", "target"),
    "humaneval": ("task_id", "prompt", "test", "entry_point"),
}
MMLU_FIELDS = 6  # question, four choices, answer letter


def check_evaluated_files(benchmarks: list[str], benchmarks_dir: Path) -> None:
    """Read every row of the files these benchmarks are asked from; an InputError naming the
    file and line (or row) of the first that does not parse or lacks a field. Seconds at most:
    run before a model is loaded, so a broken file stops a run before its evaluation starts."""
    files = {name: Path(benchmarks_dir) / FILES[name] for name in benchmarks}
    for name, path in files.items():
        if not path.exists():
            raise InputError(f"evaluate.benchmarks.{name}: benchmark file not found: {path}")
        if name == "mmlu":
            _check_mmlu(path)
        elif name == "bbh":
            for task in sorted(path.glob("*.json")):
                _check_bbh_task(task)
        else:
            for _ in _json_lines(path, name, EVALUATED_FIELDS[name][0], required=EVALUATED_FIELDS[name]):
                pass


def _check_mmlu(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            for entry in sorted(e for e in archive.namelist() if _MMLU_CSV.fullmatch(e)):
                rows = csv.reader(io.StringIO(archive.read(entry).decode("utf-8")))
                for row, fields in enumerate(rows, start=1):
                    if len(fields) != MMLU_FIELDS:
                        raise InputError(
                            f"{path}: {entry} line {row}: expected {MMLU_FIELDS} columns (question, A, B, C, D, "
                            f"answer), got {len(fields)}"
                        )
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, csv.Error) as exc:
        raise _unreadable(path, exc) from exc


def _check_bbh_task(path: Path) -> None:
    try:
        examples = json.loads(path.read_text(encoding="utf-8"))["examples"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise _unreadable(path, exc) from exc
    for row, example in enumerate(examples if isinstance(examples, list) else [None]):
        if not isinstance(example, dict) or not all(isinstance(example.get(f), str) for f in EVALUATED_FIELDS["bbh"]):
            raise InputError(f"{path}: examples[{row}]: expected an object with 'input' and 'target' strings")


def _unreadable(path: Path, exc: Exception, where: str = "") -> InputError:
    return InputError(f"{path}{where}: cannot read this benchmark file ({exc}); check evaluate.benchmarks_dir")


def _mmlu(path: Path) -> Iterator[BenchmarkText]:
    try:
        with zipfile.ZipFile(path) as archive:
            entries = sorted(e for e in archive.namelist() if _MMLU_CSV.fullmatch(e))
            for entry in entries:
                split, subject = _MMLU_CSV.fullmatch(entry).group(1, 2)
                rows = csv.reader(io.StringIO(archive.read(entry).decode("utf-8")))
                for row, fields in enumerate(rows):
                    # question, four choices, answer letter: the letter adds nothing to find
                    yield BenchmarkText("mmlu", f"{subject}/{split}/{row}", " ".join(fields[:5]))
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, csv.Error) as exc:
        raise _unreadable(path, exc) from exc


def _json_lines(
    path: Path, benchmark: str, field: str, id_field: str | None = None, required: tuple[str, ...] = ()
) -> Iterator[BenchmarkText]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                fields = required or (field,)
                try:
                    row = json.loads(line)
                    text = row[field]
                    if required and not all(isinstance(row[f], str) for f in required):
                        raise TypeError("not all strings")
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    why = f"no field {exc}" if isinstance(exc, KeyError) else str(exc)
                    raise InputError(
                        f"{path} line {line_number}: expected a JSON object with {', '.join(map(repr, fields))} "
                        f"strings ({why})"
                    ) from None
                index = str(row[id_field]) if id_field else str(line_number - 1)
                yield BenchmarkText(benchmark, index, str(text))
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise _unreadable(path, exc) from exc


def _bbh(folder: Path) -> Iterator[BenchmarkText]:
    for path in sorted(folder.glob("*.json")):
        try:
            examples = json.loads(path.read_text(encoding="utf-8"))["examples"]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise _unreadable(path, exc) from exc
        for row, example in enumerate(examples):
            yield BenchmarkText("bbh", f"{path.stem}/{row}", str(example.get("input", "")))


def _alpaca_eval(path: Path) -> Iterator[BenchmarkText]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _unreadable(path, exc) from exc
    if not isinstance(rows, list):
        raise InputError(f"{path}: expected a JSON list of {{instruction, output}} objects")
    for row, item in enumerate(rows):
        instruction = item.get("instruction") if isinstance(item, dict) else None
        if not isinstance(instruction, str):
            raise InputError(f"{path} item {row}: expected an object with an 'instruction' string")
        yield BenchmarkText("alpaca_eval", str(row), instruction)
