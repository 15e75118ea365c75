"""What a run checks before any work (issue 25): folders it writes, and the messages that name them."""

from __future__ import annotations

import json
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


def test_an_existing_output_file_is_judged_by_itself_and_its_folder(tmp_path, monkeypatch):
    (tmp_path / "selected.json").write_text("[]")
    assert unwritable_folder(tmp_path / "selected.json") is None  # written before: writing it again is fine
    _deny(monkeypatch, tmp_path / "selected.json")
    assert unwritable_folder(tmp_path / "selected.json") == tmp_path / "selected.json"


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

    # <rater>/<key>/<shard>.parquet; the embeddings kept beside a shard, a level deeper, are not shards
    (tmp_path / "shards" / "rater" / "key" / "embeddings" / "e").mkdir(parents=True)
    (tmp_path / "shards" / "rater" / "key" / "0.parquet").write_bytes(b"")
    (tmp_path / "shards" / "rater" / "key" / "embeddings" / "e" / "0.parquet").write_bytes(b"")
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


def test_report_and_explain_name_the_first_stage_that_has_not_run(tmp_path):
    from selectit.core.errors import InputError
    from selectit.core.layout import Layout
    from selectit.summaries import require_selection_stages

    layout = Layout(tmp_path / "data")
    layout.ingested.mkdir(parents=True)
    (layout.ingested / "summary.json").write_text("{}")  # only ingest has run
    with pytest.raises(InputError, match=r"the validate stage has not finished here .*`dvc repro validate`"):
        require_selection_stages(layout, ["tiny"])
    for stage in (layout.validated, layout.rater_scores("tiny")):
        stage.mkdir(parents=True)
        (stage / "summary.json").write_text("{}")
    require_selection_stages(layout, ["tiny"], through="score")  # what explain needs
    with pytest.raises(InputError, match=r"the aggregate stage has not finished"):
        require_selection_stages(layout, ["tiny"])


def test_a_missing_base_model_is_named_by_its_key_and_flag_not_as_a_rater(tmp_path):
    from selectit.core.errors import ModelLoadError
    from selectit.finetune.train import BASE_MODEL
    from selectit.rating.models import resolve

    with pytest.raises(ModelLoadError, match=r"^finetune.base_model \(--base-model\) '/absent/model': not a model"):
        resolve("/absent/model", role=BASE_MODEL)


def test_a_stage_ends_with_one_line_of_rows_in_kept_and_rejected_by_reason(tmp_path):
    from selectit.summaries import ledger_line

    ledger = tmp_path / "rejects.jsonl"
    reasons = [
        "duplicate of a.json row 1",
        "duplicate of a.json row 2",
        "validation: output too short: 0 characters; input too long",
        "invalid JSON: Expecting value",
    ]
    ledger.write_text("".join(json.dumps({"reason": r}) + "\n" for r in reasons))
    assert ledger_line("ingest", 11, 7, ledger) == (
        f"ingest: 11 rows in, 7 kept, 4 rejected (2 duplicate, 1 output too short, 1 invalid JSON); "
        f"rejects and reasons: {ledger}"
    )
