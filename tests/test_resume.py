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
from conftest import ROOT, TINY_ROWS, pipeline_params, stage_context
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


def test_killed_scoring_resumes_without_redoing_or_losing_rows(tmp_path, smollm2_folder, prefect_harness):
    from flows.score import score_flow

    source = tmp_path / "source.json"
    source.write_text(json.dumps(TINY_ROWS + MORE_ROWS))
    params, data = _prepare(tmp_path / "killed", source)
    cache = data / "cache" / "ratings" / RATER
    n = len((data / "validated" / "examples.jsonl").read_text().splitlines())  # scored: one shard each

    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = tmp_path / "killed-run.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.score", "--params", str(params), "--data", str(data), "--rater", RATER],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while len(list(cache.glob("**/*.parquet"))) < 2 and time.monotonic() < deadline:
            assert process.poll() is None, (
                f"the scoring run ended before it could be killed:\n{log.read_text()[-3000:]}"
            )
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    finished = len(list(cache.glob("**/*.parquet")))
    assert 2 <= finished < n, f"{finished} of {n} shards finished before the kill"
    assert not (data / "scores" / RATER / "ratings.parquet").exists()  # no output that looks complete

    resumed = score_flow(stage_context(params, data), RATER)
    assert resumed.texts_run == n - finished  # one prompt, one example per shard

    reference_params, reference_data = _prepare(tmp_path / "reference", source)
    score_flow(stage_context(reference_params, reference_data), RATER)
    got = pq.read_table(data / "scores" / RATER / "ratings.parquet")
    expected = pq.read_table(reference_data / "scores" / RATER / "ratings.parquet")
    assert got.num_rows == n == 7 and got.equals(expected)
