"""Judged response pairs: JSON lines of `{instruction, input?, response_a, response_b, preferred}`.

`preferred` is "a" or "b"; `input` may be missing or null; `pair_id` (optional)
names the pair in the report; `generator_a` and `generator_b` (optional) name
the models that wrote the responses, and the report breaks agreement down by
them. A line that is not such a pair becomes a `Reject` with the file, line and
reason (reported, never dropped silently); a file with no usable pair at all is
one `InputError`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from selectit.core.errors import InputError
from selectit.core.io import decode_line, read_input_bytes
from selectit.core.records import Example, Reject, example_id

SIDES = ("a", "b")
EXPECTED_FORM = '{"instruction", "input" (optional), "response_a", "response_b", "preferred": "a" or "b"}'


@dataclass(frozen=True)
class JudgedPair:
    pair_id: str
    instruction: str
    input: str
    response_a: str
    response_b: str
    preferred: str  # "a" or "b"
    line: int  # 1-based line of the pairs file
    generators: str = ""  # "<generator_a> vs <generator_b>" when the file names them, else ""

    def response(self, side: str) -> str:
        return self.response_a if side == "a" else self.response_b

    @property
    def other(self) -> str:
        return "b" if self.preferred == "a" else "a"

    def example_id(self, side: str) -> str:
        """The content id the response gets as an example (the same id the pipeline would give it)."""
        return example_id(self.instruction, self.input, self.response(side))


@dataclass
class PairsRead:
    path: Path
    pairs: list[JudgedPair]
    rejects: list[Reject]  # lines that are not usable pairs, with why
    lines_read: int  # non-blank lines read (reading stops once `limit` pairs are found)


class _BadPair(ValueError):
    pass


def _text(row: dict, key: str, optional: bool = False) -> str:
    if key not in row or (optional and row[key] is None):
        if optional:
            return ""
        raise _BadPair(f"missing field '{key}'")
    value = row[key]
    if not isinstance(value, str):
        raise _BadPair(f"field '{key}' must be a string, got {'null' if value is None else type(value).__name__}")
    return value


def _parse(row: object, line: int) -> JudgedPair:
    if not isinstance(row, dict):
        raise _BadPair("not a JSON object")
    instruction = _text(row, "instruction")
    if not instruction.strip():
        raise _BadPair("field 'instruction' is empty")
    # An empty response is kept: a judge can prefer an answer over no answer.
    response_a, response_b = _text(row, "response_a"), _text(row, "response_b")
    if "preferred" not in row:
        raise _BadPair("missing field 'preferred'")
    preferred = row["preferred"]
    if preferred not in SIDES:
        raise _BadPair(f'field \'preferred\' must be "a" or "b", got {json.dumps(preferred)}')
    pair_id = row.get("pair_id")
    generators = (row.get("generator_a"), row.get("generator_b"))
    return JudgedPair(
        pair_id=str(pair_id) if pair_id is not None else f"line {line}",
        instruction=instruction,
        input=_text(row, "input", optional=True),
        response_a=response_a,
        response_b=response_b,
        preferred=preferred,
        line=line,
        generators=" vs ".join(generators) if all(isinstance(g, str) and g for g in generators) else "",
    )


def read_pairs(path: str | Path, limit: int | None = None) -> PairsRead:
    """The first `limit` usable pairs of the file (all when None), and the bad lines before them."""
    path = Path(path)
    data = read_input_bytes(path, missing=f"no such file (judged pairs expected: JSON lines of {EXPECTED_FORM})")
    pairs: list[JudgedPair] = []
    rejects: list[Reject] = []
    lines_read = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if limit is not None and len(pairs) >= limit:
            break
        if not raw.strip():
            continue
        lines_read += 1
        text = raw.decode("utf-8", errors="backslashreplace").rstrip("\r")
        try:
            row = json.loads(decode_line(raw, number))
            pairs.append(_parse(row, number))
        except UnicodeDecodeError as exc:
            rejects.append(Reject(str(path), lines_read - 1, number, f"not valid UTF-8 ({exc.reason})", text))
        except json.JSONDecodeError as exc:
            rejects.append(Reject(str(path), lines_read - 1, number, f"invalid JSON: {exc}", text))
        except _BadPair as exc:
            rejects.append(Reject(str(path), lines_read - 1, number, str(exc), row))
    if not pairs:
        if not lines_read:
            raise InputError(f"{path} is empty (judged pairs expected: JSON lines of {EXPECTED_FORM})")
        first = rejects[0]
        raise InputError(
            f"{path}: no usable judged pair in {lines_read} line(s); line {first.line}: {first.reason}. "
            f"Expected JSON lines of {EXPECTED_FORM}"
        )
    return PairsRead(path, pairs, rejects, lines_read)


def pair_examples(pairs: Sequence[JudgedPair], source: str) -> list[Example]:
    """Each response as an example to rate: the pair's instruction and input, the response as output.

    The same text in two pairs is rated once (one content id). Each example's
    (source, row) is unique, naming the pair's line and side, so a response a
    rater cannot read is traced to it."""
    examples: dict[str, Example] = {}
    for pair in pairs:
        for side in SIDES:
            eid = pair.example_id(side)
            if eid not in examples:
                examples[eid] = Example(
                    id=eid,
                    instruction=pair.instruction,
                    input=pair.input,
                    output=pair.response(side),
                    source=f"{source} line {pair.line} response_{side}",
                    row=pair.line,
                    format="judged pair",
                    raw={"pair_id": pair.pair_id, "side": side},
                )
    return list(examples.values())
