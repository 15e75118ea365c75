"""Writing files so that a crash never leaves a half-written one that a later stage would
take for complete: every output goes to a temporary file beside it and is renamed. Reading
an input file, with the errors a user can act on."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

from selectit.core.errors import InputError


@functools.cache
def _umask() -> int:
    # Linux reports it without changing it; os.umask can only read it by setting it, which
    # for a moment would loosen the mask of every other thread's new files.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(handle)`` on a temporary file in the same folder, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; an output gets the mode any file written here would
        # (0644 under the usual umask), so a team's shared data folder and DVC cache can read it.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json(path: str | Path, payload: object) -> None:
    write_text(path, json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_input_bytes(path: Path, missing: str = "file not found") -> bytes:
    """The bytes of an input file; a missing or unreadable one is an InputError naming it
    (`missing` says what a missing file should have been)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: {missing}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read file: {exc.strerror or exc}") from None


def decode_line(raw: bytes, number: int) -> str:
    """One line of a text file as UTF-8 (raises UnicodeDecodeError); only the first line
    (`number` 1) may start with a byte-order mark, which is dropped."""
    return raw.decode("utf-8-sig" if number == 1 else "utf-8")
