"""The data model every stage shares, and the record files stages hand each other.

An `Example` is one instruction/response pair with its content id (the same
content has the same id whatever file or format it came from); a `Reject` is a
row that could not be used, kept with its reason. Stages pass examples on as
JSON lines of `RECORD_FIELDS` and rejects as JSON lines of their fields.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from selectit.core.io import atomic_write


@dataclass(frozen=True)
class Example:
    id: str
    instruction: str
    input: str
    output: str
    source: str
    row: int
    format: str
    raw: dict = field(hash=False)  # a dict is unhashable; the id already identifies content


@dataclass(frozen=True)
class Reject:
    source: str
    row: int
    line: int | None
    reason: str
    raw: object = field(hash=False)


def example_id(instruction: str, input: str, output: str) -> str:
    canonical = json.dumps([instruction, input, output], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _json_lines(rows: Iterable[object]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def reject_line(reject: Reject) -> bytes:
    """A reject as `write_rejects` writes it: one JSON line."""
    row = {"source": reject.source, "row": reject.row, "line": reject.line, "reason": reject.reason, "raw": reject.raw}
    return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


# Flags of examples kept with a caveat (Layout.flagged): the kind, and its line in the ledger.
TRUNCATED = "truncated"  # the response was cut to validate.max_chars


def flag_line(example: Example, flag: str, detail: str) -> bytes:
    row = {"id": example.id, "source": example.source, "row": example.row, "flag": flag, "detail": detail}
    return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


def write_rejects(rejects: Iterable[Reject], path: str | Path) -> None:
    atomic_write(path, lambda handle: handle.writelines(reject_line(r) for r in rejects))


def _json_list_chunks(rows: Iterable[object]) -> Iterator[bytes]:
    """`json.dumps(rows, indent=2, ensure_ascii=False) + "\\n"`, byte for byte, one row at a time.

    An item of a list indented by 2 is the item dumped on its own, every line
    indented 2 more (JSON text never holds a raw newline inside a string)."""
    first = True
    for row in rows:
        item = json.dumps(row, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        yield ("[\n  " if first else ",\n  ").encode("utf-8") + item.encode("utf-8")
        first = False
    yield b"[]\n" if first else b"\n]\n"


def write_json_list(rows: Iterable[object], path: str | Path) -> None:
    """The rows as one indented JSON list, written as they come (never all of them at once)."""
    atomic_write(path, lambda handle: handle.writelines(_json_list_chunks(rows)))


# The pipeline hands examples from stage to stage as JSON lines of these fields.
RECORD_FIELDS = ("id", "instruction", "input", "output", "source", "row", "format", "raw")


def example_record_line(example: Example) -> bytes:
    """An example as `write_example_records` writes it: one JSON line."""
    return (json.dumps({name: getattr(example, name) for name in RECORD_FIELDS}, ensure_ascii=False) + "\n").encode(
        "utf-8"
    )


def write_example_records(examples: Iterable[Example], path: str | Path) -> None:
    """Write the examples as they come: a generator is never held whole."""
    atomic_write(path, lambda handle: handle.writelines(example_record_line(e) for e in examples))


def iter_example_records(path: str | Path) -> Iterator[Example]:
    """Examples written by `write_example_records`, one at a time (a stage's output, trusted as such)."""
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield Example(**json.loads(line))


def iter_example_record_shards(path: str | Path, shard_size: int) -> Iterator[list[Example]]:
    """The examples of a records file in input order, `shard_size` at a time: a stage that
    works shard by shard holds one shard of examples, never the whole file."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    shard: list[Example] = []
    for example in iter_example_records(path):
        shard.append(example)
        if len(shard) == shard_size:
            yield shard
            shard = []
    if shard:
        yield shard


def read_example_records(path: str | Path) -> list[Example]:
    """Examples written by `write_example_records` (a stage's output, trusted as such)."""
    return list(iter_example_records(path))


def read_rejects(path: str | Path) -> list[Reject]:
    """Rejects written by `write_rejects` (a stage's output)."""
    with Path(path).open(encoding="utf-8") as handle:
        return [Reject(**json.loads(line)) for line in handle if line.strip()]
