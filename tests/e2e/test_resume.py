"""A scoring run killed with SIGKILL resumes without redoing finished shards, and ends
with exactly the outputs of an uninterrupted run (real SmolLM2, in a subprocess)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from helpers import ROOT, TINY_ROWS, command_env, pipeline_params, stage_context
from test_pipeline import MORE_ROWS

pytestmark = pytest.mark.slow
RATER = "smollm2-135m-instruct"


def _prepare(folder, source):
    from flows.ingest import ingest_flow
    from flows.validate import validate_flow

    params = pipeline_params(folder, source, [RATER], score__num_prompts=1, score__shard_size=1)
    data = folder / "data"
    ingest_flow(stage_context(params, data))
    validate_flow(stage_context(params, data))
    return params, data


# `python -m MODULE ARGS` with SIGINT raising KeyboardInterrupt, as in a terminal's
# foreground job: a background job of a script (CI's, for one) inherits SIGINT ignored.
_AS_A_TERMINAL_JOB = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


def _start_scoring(tmp_path, params, data, log, api_url: str | None = None):
    """`python -m flows.score` in its own session, as a terminal's foreground job; with
    `api_url`, reporting to that Prefect API instead of starting a temporary server."""
    env = command_env(tmp_path / "prefect")
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    with log.open("w") as output:
        return subprocess.Popen(
            [sys.executable, "-c", _AS_A_TERMINAL_JOB, "flows.score"]
            + ["--params", str(params), "--data", str(data), "--rater", RATER],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for_shards(process, cache, count: int, log) -> None:
    deadline = time.monotonic() + 240
    # Rating shards: <key>/<shard>.parquet (the embeddings kept beside them sit a level deeper).
    while len(list(cache.glob("*/*.parquet"))) < count and time.monotonic() < deadline:
        assert process.poll() is None, f"the scoring run ended before it could be stopped:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def test_killed_scoring_resumes_without_redoing_or_losing_rows(tmp_path, smollm2_folder, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    from flows.score import score_flow

    source = tmp_path / "source.json"
    source.write_text(json.dumps(TINY_ROWS + MORE_ROWS))
    params, data = _prepare(tmp_path / "killed", source)
    cache = data / "cache" / "ratings" / RATER
    n = len((data / "validated" / "examples.jsonl").read_text().splitlines())  # scored: one shard each

    log = tmp_path / "killed-run.log"
    # The session's Prefect API: Prefect starts a temporary server in a session of its own,
    # which a SIGKILL to the run's process group would leave running after the tests.
    process = _start_scoring(tmp_path, params, data, log, api_url=PREFECT_API_URL.value())
    try:
        _wait_for_shards(process, cache, 2, log)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    finished = len(list(cache.glob("*/*.parquet")))
    assert 2 <= finished < n, f"{finished} of {n} shards finished before the kill"
    assert not (data / "scores" / RATER / "ratings.parquet").exists()  # no output that looks complete

    resumed = score_flow(stage_context(params, data), RATER)
    assert resumed.texts_run == n - finished  # one prompt, one example per shard

    reference_params, reference_data = _prepare(tmp_path / "reference", source)
    score_flow(stage_context(reference_params, reference_data), RATER)
    got = pq.read_table(data / "scores" / RATER / "ratings.parquet")
    expected = pq.read_table(reference_data / "scores" / RATER / "ratings.parquet")
    assert got.num_rows == n == 7 and got.equals(expected)


def test_ctrl_c_ends_the_run_in_seconds_with_one_line_and_it_resumes(tmp_path, smollm2_folder, prefect_harness):
    """Ctrl-C reaches the whole foreground process group, Prefect's temporary server included."""
    from flows.score import score_flow

    source = tmp_path / "source.json"
    source.write_text(json.dumps(TINY_ROWS + MORE_ROWS))
    params, data = _prepare(tmp_path / "interrupted", source)
    cache = data / "cache" / "ratings" / RATER
    n = len((data / "validated" / "examples.jsonl").read_text().splitlines())

    log = tmp_path / "interrupted-run.log"
    process = _start_scoring(tmp_path, params, data, log)
    try:
        _wait_for_shards(process, cache, 1, log)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)  # before, it spent 77 s retrying a server that Ctrl-C had stopped
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = log.read_text()
    assert process.returncode == 130, output[-3000:]
    finished = len(list(cache.glob("*/*.parquet")))
    (line,) = [x for x in output.splitlines() if "interrupted" in x]
    assert line.startswith(f"score: interrupted; kept {finished} finished rating shard(s) in {data / 'cache'}")
    assert line.endswith("run the same command again to resume from them")
    assert "Traceback" not in output
    assert score_flow(stage_context(params, data), RATER).texts_run == n - finished
