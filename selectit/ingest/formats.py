"""Read instruction-tuning data in its input formats into the one `Example` type
(selectit/core/records.py), with a `Reject` for every row that cannot be used.

Containers: a JSON list (text starts with ``[``) or JSON lines (one row per
non-blank line), optionally gzipped (``.gz`` suffix or gzip magic bytes).
A file that is one JSON object holding the rows as a list under a key is read
when that key is given (`rows_key`). Every unusable row becomes a `Reject` with
its position and reason (a JSON line with bytes that are not UTF-8 too); only
whole-file problems (unreadable, a JSON list that is not UTF-8, broken JSON
list, empty, no row in a known format) raise `InputError`.

Row formats, decided per row by its keys (first match wins):
  * alpaca:   ``instruction`` / ``output`` (+ optional ``input``, null -> "")
  * sharegpt: ``conversations`` = [{"from": role, "value": text}, ...]
  * openai:   ``messages`` = [{"role": role, "content": text}, ...]; ``content`` may
              also be a list of text parts ([{"type": "text", "text": ...}])

Conversations are normalised as follows. A system turn at index 0 becomes
``input``. The last turn must be a non-empty assistant turn; it becomes
``output``. If exactly one user turn remains, its text is ``instruction``;
otherwise the remaining turns are rendered as a transcript, "User: ...",
"Assistant: ..." (and "System: ..." for a later system turn) joined by a
blank line. So the same content gets the same id whatever its format.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from selectit.core.errors import InputError
from selectit.core.io import decode_line, read_input_bytes
from selectit.core.records import Example, Reject, example_id

ACCEPTED_FORMATS = "alpaca (instruction/output[/input]), sharegpt (conversations), openai (messages)"
UNKNOWN_FORMAT = "unknown format: expected keys instruction/output, conversations or messages"
NOT_OBJECT = "row is not a JSON object"
NO_FINAL_ASSISTANT = "conversation does not end with an assistant turn"

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "system": "system",
}
OPENAI_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
TRANSCRIPT_LABELS = {"user": "User", "assistant": "Assistant", "system": "System"}


@dataclass
class ReadResult:
    examples: list[Example]
    rejects: list[Reject]
    n_duplicates: int


@dataclass
class ReadCounts:
    """What `iter_examples` has read so far; it counts as it goes."""

    examples: int = 0  # distinct examples
    rejects: int = 0  # rejected rows, duplicates included
    duplicates: int = 0


class _RowError(Exception):
    """A row is unusable; `unknown` marks rows whose format was not recognised."""

    def __init__(self, reason: str, unknown: bool = False):
        super().__init__(reason)
        self.reason, self.unknown = reason, unknown


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _text_field(row: dict, key: str, where: str = "") -> str:
    """Return row[key] as a string or raise a _RowError naming it."""
    prefix = f"{where}: " if where else ""
    if key not in row:
        raise _RowError(f"{prefix}missing field '{key}'")
    value = row[key]
    if not isinstance(value, str):
        raise _RowError(f"{prefix}field '{key}' must be a string, got {_type_name(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON allows "\ud83d" alone; no text encoding does
        raise _RowError(
            f"{prefix}field '{key}' contains an unpaired surrogate U+{ord(value[exc.start]):04X} at offset {exc.start}"
        ) from None
    return value


def _content_parts(turn: dict, where: str) -> str:
    """OpenAI's `content` as a list of parts ([{"type": "text", "text": ...}], common in
    exported chats): the text parts joined; any other part (an image, audio) cannot be rated."""
    texts = []
    for j, part in enumerate(turn["content"]):
        part_where = f"{where}.content[{j}]"
        if not isinstance(part, dict):
            raise _RowError(f"{part_where} is not a JSON object")
        if part.get("type") != "text":
            raise _RowError(f"{part_where} is a {part.get('type')!r} part; only text parts can be rated")
        texts.append(_text_field(part, "text", part_where))
    return "\n".join(texts)


def _parse_alpaca(row: dict) -> tuple[str, str, str]:
    texts = {}
    for key in ("instruction", "output"):
        texts[key] = _text_field(row, key)
        if not texts[key].strip():
            raise _RowError(f"field '{key}' is empty")
    input_text = "" if row.get("input") is None else _text_field(row, "input")
    return texts["instruction"], input_text, texts["output"]


def _parse_conversation(
    row: dict, key: str, role_key: str, text_key: str, roles: dict[str, str]
) -> tuple[str, str, str]:
    turns = row[key]
    if not isinstance(turns, list):
        raise _RowError(f"field '{key}' must be a list, got {_type_name(turns)}")
    parsed: list[tuple[str, str]] = []
    for i, turn in enumerate(turns):
        where = f"{key}[{i}]"
        if not isinstance(turn, dict):
            raise _RowError(f"{where} is not a JSON object")
        if role_key not in turn:
            raise _RowError(f"{where}: missing field '{role_key}'")
        raw_role = turn[role_key]
        role = roles.get(raw_role.lower()) if isinstance(raw_role, str) else None
        if role is None:
            raise _RowError(f"{where}: unknown role {raw_role!r}")
        text = (
            _content_parts(turn, where) if isinstance(turn.get(text_key), list) else _text_field(turn, text_key, where)
        )
        if role == "user" and not text.strip():
            raise _RowError(f"{where}: user turn is empty")
        parsed.append((role, text))
    if not parsed or parsed[-1][0] != "assistant" or not parsed[-1][1].strip():
        raise _RowError(NO_FINAL_ASSISTANT)
    if not any(role == "user" for role, _ in parsed):
        raise _RowError("conversation has no user turn")
    output = parsed.pop()[1]
    system = parsed.pop(0)[1] if parsed[0][0] == "system" else ""
    if len(parsed) == 1 and parsed[0][0] == "user":
        return parsed[0][1], system, output
    transcript = "\n\n".join(f"{TRANSCRIPT_LABELS[role]}: {text}" for role, text in parsed)
    return transcript, system, output


def _parse_row(row: object) -> tuple[str, tuple[str, str, str]]:
    """Return (format, (instruction, input, output)) or raise _RowError."""
    if not isinstance(row, dict):
        raise _RowError(NOT_OBJECT, unknown=True)
    if "instruction" in row or "output" in row:
        return "alpaca", _parse_alpaca(row)
    if "conversations" in row:
        return "sharegpt", _parse_conversation(row, "conversations", "from", "value", SHAREGPT_ROLES)
    if "messages" in row:
        return "openai", _parse_conversation(row, "messages", "role", "content", OPENAI_ROLES)
    raise _RowError(UNKNOWN_FORMAT, unknown=True)


def _read_text(path: Path) -> tuple[str, dict[int, str]]:
    """The file's text, and the JSON lines (1-based) that are not valid UTF-8, with why.

    Such a line stays in the text with its bad bytes escaped (`\\xff`), so that its
    reject shows what was there; in a JSON list one bad byte spoils the whole file."""
    data = read_input_bytes(path)
    if path.name.endswith(".gz") or data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise InputError(f"{path}: not a valid gzip file: {exc}") from None
    bad_lines: dict[int, str] = {}
    try:
        text = data.decode("utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError as exc:
        if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
            raise InputError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, start=1):
            try:
                lines[number - 1] = decode_line(raw, number)
            except UnicodeDecodeError as line_exc:
                bad_lines[number] = f"not valid UTF-8 ({line_exc.reason} at byte {line_exc.start} of the line)"
                lines[number - 1] = raw.decode("utf-8", errors="backslashreplace")
        text = "\n".join(lines)
    if not text.strip():
        raise InputError(f"{path} is empty")
    return text, bad_lines


def _iter_rows(
    path: Path, text: str, bad_lines: dict[int, str], rows_key: str | None = None
) -> list[tuple[int, int | None, object, str | None]]:
    """Split a file into (row, line, parsed value or raw text, row error or None)."""
    if text.lstrip().startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: invalid JSON list: {exc}") from None
        return [(i, None, value, None) for i, value in enumerate(values)]
    rows = []
    lines = [(n, line) for n, line in enumerate(text.split("\n"), start=1) if line.strip() or n in bad_lines]
    for row, (line_no, line) in enumerate(lines):
        if line_no in bad_lines:
            rows.append((row, line_no, line.rstrip("\r"), bad_lines[line_no]))
            continue
        try:
            rows.append((row, line_no, json.loads(line), None))
        except json.JSONDecodeError as exc:
            rows.append((row, line_no, line.rstrip("\r"), f"invalid JSON: {exc}"))
    if all(error for *_, error in rows) and not bad_lines:
        # Nothing parsed line by line: maybe one pretty-printed object.
        with contextlib.suppress(json.JSONDecodeError):
            rows = [(0, lines[0][0], json.loads(text), None)]
    if rows_key is not None:
        return _rows_under(path, rows, rows_key)
    return rows


def _rows_under(path: Path, rows: list, key: str) -> list[tuple[int, int | None, object, str | None]]:
    """The rows of a file that is one JSON object holding them as a list under `key`."""
    value = rows[0][2] if len(rows) == 1 else None
    if not isinstance(value, dict) or not isinstance(value.get(key), list):
        raise InputError(f"{path}: ingest.rows_key is {key!r}, but the file is not one JSON object with a list there")
    return [(i, None, item, None) for i, item in enumerate(value[key])]


def _rows_hint(rows: list) -> str:
    """For a file that is one JSON object: the keys that hold a list of objects, if any."""
    if len(rows) != 1 or not isinstance(rows[0][2], dict):
        return ""
    keys = [k for k, v in rows[0][2].items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if not keys:
        return ""
    return (
        f"; the file is one JSON object and the rows seem to sit under {' or '.join(repr(k) for k in keys)}:"
        f" set ingest.rows_key: {keys[0]} in params.yaml (the selectit commands also take --rows-key {keys[0]})"
    )


def _input_lines(path: Path) -> Iterator[bytes]:
    """The file's lines as bytes, newline dropped, gunzipped on the fly when it is gzipped."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    with handle:
        gzipped = path.name.endswith(".gz") or handle.read(2) == b"\x1f\x8b"
        handle.seek(0)
        stream = gzip.GzipFile(fileobj=handle, mode="rb") if gzipped else handle
        try:
            for raw in stream:
                yield raw[:-1] if raw.endswith(b"\n") else raw
        except (OSError, EOFError, zlib.error) as exc:
            if gzipped:
                raise InputError(f"{path}: not a valid gzip file: {exc}") from None
            raise InputError(f"{path}: cannot read file: {getattr(exc, 'strerror', None) or exc}") from None


def _is_json_list(path: Path) -> bool:
    """Whether the file's text starts with `[` (a JSON list), from its first non-blank line."""
    for number, raw in enumerate(_input_lines(path), start=1):
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8", errors="replace").strip()
        if text:
            return text.startswith("[")
    return False


def _stream_rows(path: Path) -> Iterator[tuple[int, int | None, object, str | None]]:
    """The rows of a JSON lines file, as `_iter_rows` makes them, read line by line.

    Rows wait in memory only until one parses (or a line is not UTF-8): a file whose
    lines all fail may be one pretty-printed object, which only its whole text shows."""
    pending: list[tuple[int, int | None, object, str | None]] = []
    settled = False  # the file is JSON lines: no need to keep rows back
    row = 0
    for number, raw in enumerate(_input_lines(path), start=1):
        try:
            line, error = decode_line(raw, number), None
        except UnicodeDecodeError as exc:
            line = raw.decode("utf-8", errors="backslashreplace")  # the reject shows the bad bytes escaped
            error = f"not valid UTF-8 ({exc.reason} at byte {exc.start} of the line)"
            settled = True
        if error is None:
            if not line.strip():
                continue
            try:
                value, settled = json.loads(line), True
            except json.JSONDecodeError as exc:
                error = f"invalid JSON: {exc}"
        if error is not None:
            value = line.rstrip("\r")
        pending.append((row, number, value, error))
        row += 1
        if settled:
            yield from pending
            pending = []
    if settled:
        return
    if not pending:
        raise InputError(f"{path} is empty")
    with contextlib.suppress(json.JSONDecodeError):  # nothing parsed line by line: maybe one object
        pending = [(0, pending[0][1], json.loads(_read_text(path)[0]), None)]
    yield from pending


def _read_file(path_like: str | Path, rows_key: str | None = None) -> Iterator[tuple[Example | Reject, int | None]]:
    """Parse one file into examples and per-row rejects, in row order, each with its line.

    JSON lines are read as a stream; a JSON list, and a file holding its rows under
    `rows_key`, are one JSON document and are parsed whole."""
    path, source = Path(path_like), str(path_like)
    if rows_key is None and not _is_json_list(path):
        rows: Iterable[tuple[int, int | None, object, str | None]] = _stream_rows(path)
    else:
        rows = _iter_rows(path, *_read_text(path), rows_key=rows_key)
        if not rows:
            raise InputError(f"{path}: contains no rows")
    recognised, n_rows, only_row, first_reject = 0, 0, [], None
    for row, line, value, json_error in rows:
        n_rows += 1
        if n_rows == 1:
            only_row = [(row, line, value, json_error)]  # for the hint of a file that is one object
        try:
            if json_error:
                raise _RowError(json_error, unknown=True)
            fmt, (instruction, input_text, output) = _parse_row(value)
        except _RowError as err:
            recognised += not err.unknown
            reject = Reject(source, row, line, err.reason, value)
            first_reject = first_reject or reject
            yield reject, line
            continue
        recognised += 1
        example = Example(
            example_id(instruction, input_text, output), instruction, input_text, output, source, row, fmt, value
        )
        yield example, line
    if not recognised:
        first = first_reject
        where = f"row {first.row}" + (f" (line {first.line})" if first.line else "")
        raise InputError(
            f"{path}: no row is in a known format (accepted formats: {ACCEPTED_FORMATS}); {where}: {first.reason}"
            + _rows_hint(only_row if n_rows == 1 else [])
        )


def iter_examples(
    paths: Sequence[str | Path], rows_key: str | None = None, counts: ReadCounts | None = None
) -> Iterator[Example | Reject]:
    """Every example and reject of the files, in order (file, then row), as a stream:
    only the ids met so far stay in memory, to tell duplicates. `counts` is filled in
    as it goes; a file-level problem raises `InputError` when the reading reaches it."""
    if isinstance(paths, (str, Path)):  # a bare path would otherwise be iterated per character
        paths = [paths]
    counts = ReadCounts() if counts is None else counts
    first_seen: dict[str, tuple[str, int]] = {}  # id -> (source, row) of its first example
    for path in paths:
        for item, line in _read_file(path, rows_key):
            if isinstance(item, Example):
                original = first_seen.get(item.id)
                if original is None:
                    first_seen[item.id] = (item.source, item.row)
                    counts.examples += 1
                    yield item
                    continue
                counts.duplicates += 1
                item = Reject(item.source, item.row, line, f"duplicate of {original[0]} row {original[1]}", item.raw)
            counts.rejects += 1
            yield item


def read_examples(paths: Sequence[str | Path], rows_key: str | None = None) -> ReadResult:
    """Every example of the files, in order; `rows_key` names the key under which a file
    that is one JSON object holds its rows (`{"data": [...]}`)."""
    counts = ReadCounts()
    result = ReadResult(examples=[], rejects=[], n_duplicates=0)
    for item in iter_examples(paths, rows_key, counts):
        (result.examples if isinstance(item, Example) else result.rejects).append(item)
    result.n_duplicates = counts.duplicates
    return result
