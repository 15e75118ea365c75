"""The ingest stage: fetch each source (local file, http(s) URL, Hugging Face
dataset) and normalise it into example records with rejects kept."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from selectit.ingest.records import Example, InputError, Reject, read_examples

DOWNLOAD_TIMEOUT_S = 60
DOWNLOAD_ATTEMPTS = 3


@dataclass
class IngestResult:
    examples: list[Example]
    rejects: list[Reject]
    n_duplicates: int
    n_read: int  # examples read before `limit`
    sources: list[dict] = field(default_factory=list)  # {source, path, sha256, bytes}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(source: str, download_dir: Path) -> Path:
    """A local path for the source; remote sources are downloaded into download_dir."""
    if source.startswith("hf:"):
        return _fetch_hub_dataset(source[3:], download_dir)
    if source.startswith(("http://", "https://")):
        name = Path(urllib.parse.urlparse(source).path).name or "download.jsonl"
        target = download_dir / name
        download_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                with urllib.request.urlopen(source, timeout=DOWNLOAD_TIMEOUT_S) as response, partial.open("wb") as out:
                    shutil.copyfileobj(response, out)
                break
            except OSError as exc:
                partial.unlink(missing_ok=True)
                if attempt == DOWNLOAD_ATTEMPTS:
                    raise InputError(f"{source}: download failed after {attempt} attempts: {exc}") from exc
                time.sleep(2**attempt)  # transient network errors usually clear in seconds
        partial.replace(target)
        return target
    path = Path(source)
    if not path.is_file():
        raise InputError(f"{source}: no such file")
    return path


def _fetch_hub_dataset(spec: str, download_dir: Path) -> Path:
    """`owner/name[:split]` from the Hugging Face hub, written as JSON lines."""
    name, _, split = spec.partition(":")
    try:
        import datasets
    except ImportError as exc:
        raise InputError(f"hf:{spec}: the `datasets` package is needed for hub sources") from exc
    try:
        dataset = datasets.load_dataset(name, split=split or "train")
    except Exception as exc:  # the hub client raises many types; all mean "could not load"
        raise InputError(f"hf:{spec}: could not load the dataset: {exc}") from exc
    target = download_dir / f"{name.replace('/', '__')}-{split or 'train'}.jsonl"
    download_dir.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as out:
        for row in dataset:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return target


def ingest(sources: Sequence[str], limit: int | None, download_dir: Path) -> IngestResult:
    paths = [fetch(source, download_dir) for source in sources]
    read = read_examples(paths)
    examples = read.examples[:limit] if limit else read.examples
    info = [
        {"source": s, "path": str(p), "sha256": file_sha256(p), "bytes": p.stat().st_size}
        for s, p in zip(sources, paths, strict=True)
    ]
    return IngestResult(examples, read.rejects, read.n_duplicates, len(read.examples), info)
