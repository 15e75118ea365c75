"""Ctrl-C and SIGTERM end a run the same way: one line saying what was kept and how to
resume, exit status 128 + the signal's number (130, 143), and no traceback.

SIGTERM is what `timeout`, systemd and job schedulers send. By default Python dies of
it at once, leaving runs marked as running and no line; here it raises `Terminated`,
a KeyboardInterrupt, so every path that cleans up after Ctrl-C (atomic writes, the
MLflow run's end status, checkpoints) does so after SIGTERM too. Inside a Prefect flow
Prefect's own handler raises its TerminationSignal instead, which the commands treat
the same way."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process was when the signal came."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated in the main thread (a command's whole run)."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (a command called from a worker thread): left as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_status(exc: BaseException) -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM: what a shell reports for a process killed by them."""
    by_sigterm = isinstance(exc, Terminated) or getattr(exc, "signal", None) == signal.SIGTERM
    return 128 + (signal.SIGTERM if by_sigterm else signal.SIGINT)


def how_it_ended(exc: BaseException) -> str:
    return "terminated (SIGTERM)" if exit_status(exc) == 128 + signal.SIGTERM else "interrupted"


def kept_work(shards: Path | None, checkpoints: Path | None) -> str:
    """What an interrupted run leaves for the next one under these folders (None: a kind of
    work the command does not keep), and how to resume."""
    kept = []
    if shards is not None:
        # <rater>/<key>/<shard>.parquet: the embeddings kept beside them, a level deeper, are not counted.
        n = sum(1 for _ in shards.glob("*/*/*.parquet")) if shards.is_dir() else 0
        kept.append(f"{n} finished rating shard(s) in {shards}")
    if checkpoints is not None:
        n = sum(1 for p in checkpoints.rglob("checkpoint-*") if (p / "trainer_state.json").is_file())
        kept.append(f"{n} fine-tuning checkpoint(s) in {checkpoints}")
    return f"kept {' and '.join(kept)}; run the same command again to resume from them"
