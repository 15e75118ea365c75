"""The ingest stage: fetch each source (local file, http(s) URL, Hugging Face
dataset) and normalise it into example records with rejects kept."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from selectit.core.errors import InputError
from selectit.core.io import atomic_write, file_sha256
from selectit.core.records import Example, Reject, example_record_line, reject_line
from selectit.ingest.formats import ReadCounts, iter_examples, read_examples

DOWNLOAD_ATTEMPTS = 3
CHUNK = 1 << 20


@dataclass
class IngestResult:
    examples: list[Example]
    rejects: list[Reject]
    n_duplicates: int
    n_read: int  # examples read before `limit`
    sources: list[dict] = field(default_factory=list)  # {source, path, sha256, bytes}


@dataclass
class IngestCounts:
    """What `ingest_into` wrote: the counts of an `IngestResult`, without the rows."""

    examples: int  # written, after `limit`
    rejects: int
    n_duplicates: int
    n_read: int  # examples read before `limit`
    sources: list[dict] = field(default_factory=list)  # {source, path, sha256, bytes}


@dataclass(frozen=True)
class DownloadLimits:
    max_bytes: int  # a larger download stops with an error
    deadline_s: float  # for the whole download, all attempts together


def fetch(source: str, download_dir: Path, limits: DownloadLimits | None = None) -> Path:
    """A local path for the source; remote sources are downloaded into download_dir."""
    if source.startswith("hf:"):
        return _fetch_hub_dataset(source[3:], download_dir)
    if source.startswith(("http://", "https://")):
        return _download(source, download_dir, limits or DownloadLimits(max_bytes=1 << 30, deadline_s=600))
    path = Path(source)
    if not path.is_file():
        raise InputError(f"{source}: no such file")
    return path


def _download(url: str, download_dir: Path, limits: DownloadLimits) -> Path:
    """Stream `url` to disk through a `.partial` file, within the size cap and the deadline;
    retried on network errors; no `.partial` is left behind whatever happens."""
    parsed = urllib.parse.urlparse(url)
    try:
        if not parsed.hostname or parsed.port == 0:
            raise ValueError("no host")
    except ValueError as exc:  # .port raises it for a port that is not a number
        raise InputError(f"{url}: not a usable URL: {exc}") from None
    name = Path(parsed.path).name or "download.jsonl"
    target = download_dir / name
    download_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    deadline = time.monotonic() + limits.deadline_s
    try:
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                _stream(url, partial, limits.max_bytes, deadline)
                break
            except (OSError, TimeoutError) as exc:
                _time_left(url, deadline)  # a receive cut short by the deadline: the deadline's message
                if attempt == DOWNLOAD_ATTEMPTS or time.monotonic() + 2**attempt > deadline:
                    raise InputError(f"{url}: download failed after {attempt} attempt(s): {exc}") from exc
                time.sleep(2**attempt)  # transient network errors usually clear in seconds
        partial.replace(target)
        return target
    except ValueError as exc:  # urllib's word for a URL it cannot use
        raise InputError(f"{url}: not a usable URL: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)


def _stream(url: str, partial: Path, max_bytes: int, deadline: float) -> None:
    """The body of `url` into `partial`, stopped at `deadline` whatever the server does.

    A socket timeout bounds one receive, not the download, and `read(CHUNK)` waits for a
    whole chunk: a server sending a byte a second never tripped either. So each read takes
    what has arrived (read1) and the socket's timeout is the time left before it."""
    with urllib.request.urlopen(url, timeout=_time_left(url, deadline)) as response, partial.open("wb") as out:
        size = 0
        while True:
            _set_receive_timeout(response, _time_left(url, deadline))
            chunk = response.read1(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                cap = max_bytes // (1 << 20)
                raise InputError(f"{url}: larger than ingest.max_download_mb ({cap} MB); raise it to read this file")
            out.write(chunk)


def _time_left(url: str, deadline: float) -> float:
    """Seconds to the deadline (at most a minute per receive), or the error when it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise InputError(
            f"{url}: not downloaded within ingest.download_timeout_s; raise it, or download it and name the file"
        )
    return min(60.0, left)


def _set_receive_timeout(response, seconds: float) -> None:
    # Internal to http.client: the response reads through a SocketIO over the connection's
    # socket. Where that differs, the timeout given to urlopen bounds each receive instead.
    sock = getattr(getattr(response.fp, "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(seconds)


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


def ingest(
    sources: Sequence[str],
    limit: int | None,
    download_dir: Path,
    rows_key: str | None = None,
    limits: DownloadLimits | None = None,
) -> IngestResult:
    paths = [fetch(source, download_dir, limits) for source in sources]
    read = read_examples(paths, rows_key)
    examples = read.examples[:limit] if limit else read.examples
    return IngestResult(examples, read.rejects, read.n_duplicates, len(read.examples), _source_info(sources, paths))


def ingest_into(
    sources: Sequence[str],
    limit: int | None,
    download_dir: Path,
    examples_path: Path,
    rejects_path: Path,
    rows_key: str | None = None,
    limits: DownloadLimits | None = None,
) -> IngestCounts:
    """`ingest`, written as it reads: the example records (the first `limit`) and the
    rejects go to their files row by row, so memory holds one row and the ids met so
    far, whatever the size of the source. Both files appear only if the whole read
    succeeds."""
    paths = [fetch(source, download_dir, limits) for source in sources]
    counts = ReadCounts()
    written = 0

    def write(examples_out, rejects_out) -> None:
        nonlocal written
        for item in iter_examples(paths, rows_key, counts):
            if isinstance(item, Reject):
                rejects_out.write(reject_line(item))
            elif not limit or written < limit:
                examples_out.write(example_record_line(item))
                written += 1

    atomic_write(examples_path, lambda examples_out: atomic_write(rejects_path, lambda out: write(examples_out, out)))
    return IngestCounts(written, counts.rejects, counts.duplicates, counts.examples, _source_info(sources, paths))


def _source_info(sources: Sequence[str], paths: Sequence[Path]) -> list[dict]:
    return [
        {"source": s, "path": str(p), "sha256": file_sha256(p), "bytes": p.stat().st_size}
        for s, p in zip(sources, paths, strict=True)
    ]
