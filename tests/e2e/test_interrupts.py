"""Ctrl-C and SIGTERM end a command in seconds with one line, exit status 130 or 143 and no
traceback (issue 25, cases 4 and 6): each a real command in its own session, signalled as a
terminal (Ctrl-C) or `timeout` (SIGTERM) signals its whole process group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT, TINY_ROWS, command_env, pipeline_params, trickling_server

pytestmark = pytest.mark.slow

# `python -m MODULE ARGS` with SIGINT raising KeyboardInterrupt, as in a terminal's
# foreground job: a background job of a script (CI's, for one) inherits SIGINT ignored.
_AS_A_TERMINAL_JOB = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


def _signal_when(args: list[str], env: dict, ready: str, signum: int, log) -> tuple[int, str, float]:
    """Run `python -m ARGS`, send `signum` to its process group once `ready` is in its output;
    (exit status, output, seconds from the signal to the end)."""
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", _AS_A_TERMINAL_JOB, *args],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while ready not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(1)
        os.killpg(process.pid, signum)
        signalled = time.monotonic()
        process.wait(timeout=120)
        return process.returncode, log.read_text(), time.monotonic() - signalled
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_sigterm_to_a_stage_marks_the_run_crashed_at_once_and_exits_143(tmp_path):
    """The ingest stage, stuck in a download that trickles, with Prefect's temporary server."""
    with trickling_server() as base:
        params = pipeline_params(
            tmp_path, f"{base}/slow.jsonl", ["smollm2-135m-instruct"], ingest__download_timeout_s=600
        )
        data = tmp_path / "data"
        args = ["flows.ingest", "--params", str(params), "--data", str(data)]
        status, output, seconds = _signal_when(
            args, command_env(tmp_path / "prefect"), "Beginning flow run", signal.SIGTERM, tmp_path / "run.log"
        )
    assert status == 143, output[-3000:]
    assert seconds < 60  # before: about 135 s retrying the dead server, then a traceback
    assert "Finished in state Crashed" in output and "Traceback" not in output
    (line,) = [x for x in output.splitlines() if "terminated (SIGTERM)" in x]
    assert line.startswith("ingest: terminated (SIGTERM); kept 0 finished rating shard(s)")
    assert not (data / "ingested" / "examples.jsonl").exists()  # nothing half-written
    assert not list((data / "ingested").rglob("*.partial"))


def test_ctrl_c_in_selectit_finetune_exits_130_with_what_was_kept(tmp_path, tiny_model):
    source = tmp_path / "examples.json"
    source.write_text(json.dumps(TINY_ROWS))
    params = pipeline_params(tmp_path, source, [str(tiny_model)])
    out = tmp_path / "tuned"
    args = ["selectit", "--params", str(params), "finetune", "--out", str(out), "--max-steps", "1000"]
    status, output, seconds = _signal_when(
        args + ["--no-progress"], command_env(tmp_path / "prefect"), "training on", signal.SIGINT, tmp_path / "run.log"
    )
    assert status == 130, output[-3000:]
    assert seconds < 60 and "Traceback" not in output
    (line,) = [x for x in output.splitlines() if "interrupted" in x]
    assert line == (
        f"selectit finetune: interrupted; kept 0 fine-tuning checkpoint(s) in {out / 'checkpoints'}; "
        "run the same command again to resume from them"
    )
    assert not (out / "model").exists()
