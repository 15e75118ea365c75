"""Fixtures for the end-to-end tier: a Prefect API, a git copy of the project, a judge server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import ProjectCopy, free_port


@pytest.fixture(scope="session")
def prefect_harness():
    """A throwaway Prefect API for flows run in-process by the tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def project_copy(tmp_path, tiny_model, prefect_harness) -> ProjectCopy:
    from prefect.settings import PREFECT_API_URL

    project = ProjectCopy(tmp_path, tiny_model)
    # The project's commands report to the session's Prefect API rather than each starting a
    # temporary server of its own: seconds per command, and the DVC tests run over thirty.
    project.env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    return project


@pytest.fixture(scope="session")
def judge_server(smollm2_folder, tmp_path_factory):
    """(base URL, model name) of `transformers serve` on 127.0.0.1, offline, judging with SmolLM2."""
    import subprocess
    import sys
    import time
    import urllib.request

    cli = Path(sys.executable).parent / "transformers"  # installed with transformers, beside this Python
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    log = tmp_path_factory.mktemp("judge") / "serve.log"  # a file: an unread pipe would fill and stall it
    server = subprocess.Popen(
        [str(cli), "serve", "--host", "127.0.0.1", "--port", str(port), str(smollm2_folder)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    pytest.fail(f"transformers serve did not start:\n{log.read_text()[-3000:]}")
                time.sleep(1)
        yield f"{base}/v1", str(smollm2_folder)
    finally:
        server.terminate()
        server.wait(timeout=30)
