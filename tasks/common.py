"""Small I/O helpers shared by the stage tasks."""

from __future__ import annotations

import json
from pathlib import Path

from selectit.ingest.records import atomic_write


def write_json(path: Path, payload: object) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(payload, indent=2, default=str) + "\n").encode()))


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
