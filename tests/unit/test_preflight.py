"""What a run checks before any work (issue 25): folders it writes, and the messages that name them."""

from __future__ import annotations

import os

import pytest

from selectit.context import unwritable_folder


def _deny(monkeypatch, *blocked):
    """os.access as a read-only mount would answer for `blocked` (tests run as root, whom chmod does not stop)."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) not in map(str, blocked) and real(path, mode))


def test_a_read_only_sub_folder_of_the_data_folder_is_named(tmp_path, monkeypatch):
    (tmp_path / "data" / "selected" / "deeper").mkdir(parents=True)
    assert unwritable_folder(tmp_path / "data") is None
    _deny(monkeypatch, tmp_path / "data" / "selected")
    assert unwritable_folder(tmp_path / "data") == tmp_path / "data" / "selected"


def test_a_folder_not_made_yet_is_judged_by_the_nearest_existing_one(tmp_path, monkeypatch):
    assert unwritable_folder(tmp_path / "new" / "data") is None
    _deny(monkeypatch, tmp_path)
    assert unwritable_folder(tmp_path / "new" / "data") == tmp_path


def test_the_run_names_the_folder_and_what_it_holds(tmp_path, monkeypatch):
    from helpers import ROOT

    from selectit.context import RunContext
    from selectit.core.errors import InputError

    (tmp_path / "cache").mkdir()
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("SELECTIT_CACHE", str(tmp_path / "cache"))
    context = RunContext.open(ROOT / "params.yaml", tmp_path / "data", tmp_path)
    _deny(monkeypatch, tmp_path / "cache")
    with pytest.raises(InputError, match=r"cache: this folder cannot be written \(it holds the model cache, SELECTIT"):
        context.check_ready(evaluates=False)


def test_an_interruption_says_what_it_kept_and_exits_as_a_shell_reports_the_signal(tmp_path):
    from selectit.core import interrupts

    (tmp_path / "shards" / "rater").mkdir(parents=True)
    (tmp_path / "shards" / "rater" / "0.parquet").write_bytes(b"")
    (tmp_path / "runs" / "key" / "checkpoint-4").mkdir(parents=True)  # cut short: no trainer_state.json
    (tmp_path / "runs" / "key" / "checkpoint-2").mkdir()
    (tmp_path / "runs" / "key" / "checkpoint-2" / "trainer_state.json").write_text("{}")
    assert interrupts.kept_work(tmp_path / "shards", tmp_path / "runs") == (
        f"kept 1 finished rating shard(s) in {tmp_path / 'shards'} and 1 fine-tuning checkpoint(s) in "
        f"{tmp_path / 'runs'}; run the same command again to resume from them"
    )
    assert interrupts.exit_status(KeyboardInterrupt()) == 130
    assert interrupts.exit_status(interrupts.Terminated()) == 143
    assert interrupts.how_it_ended(interrupts.Terminated()) == "terminated (SIGTERM)"
