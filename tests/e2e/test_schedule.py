"""`python -m flows.serve` against a real Prefect server: the cron schedule makes runs, a run completes.

Starts `prefect server start` and `python -m flows.serve` as subprocesses on 127.0.0.1
(nothing reaches beyond this machine), so it takes a minute or two.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")  # this process talks to Prefect too

from helpers import ROOT, TINY_ROWS, free_port, pipeline_params  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.server]

DEPLOYMENT = "selectit-test"
CRON = "* * * * *"
OFFLINE_ENV = {
    "DO_NOT_TRACK": "1",  # Prefect's client-side telemetry
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def wait_for(what: str, check, timeout: float, procs: dict[str, tuple[subprocess.Popen, Path]], every: float = 1.0):
    """Poll `check()` until it returns something truthy; fail if a process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        for name, (proc, log) in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited ({proc.returncode}) while waiting for {what}:\n{tail(log)}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {name}\n{tail(log)}" for name, (_, log) in procs.items())
            pytest.fail(f"no {what} after {timeout:.0f} s\n{logs}")
        time.sleep(every)


def tail(log: Path, chars: int = 6000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no output)"


def healthy(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:  # the child keeps its own handle
        return subprocess.Popen(
            cmd,
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen) -> None:
    """End the process and everything it started (its own session), politely first."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # also any flow-run child left behind
    proc.wait(timeout=10)


@pytest.fixture
def prefect_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(OFFLINE_ENV)
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    env["SELECTIT_CACHE"] = os.environ.get("SELECTIT_CACHE", str(Path.home() / ".cache" / "selectit"))
    return env


@pytest.fixture
def server(tmp_path, prefect_env):
    """A Prefect server on 127.0.0.1 with its own SQLite database; yields (API URL, process, log)."""
    port = free_port()
    env = dict(prefect_env)
    env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}"
    env["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = "2"  # schedule new deployments within seconds
    log = tmp_path / "server.log"
    proc = start(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, log
    )
    try:
        url = f"http://127.0.0.1:{port}/api"
        wait_for("server health", lambda: healthy(url), 90, {"prefect server": (proc, log)})
        yield url, proc, log
    finally:
        stop(proc)


@pytest.fixture
def served(tmp_path, prefect_env, server, tiny_model):
    """`python -m flows.serve` on an every-minute cron over a 4-row input and the tiny model."""
    url, server_proc, server_log = server
    source = tmp_path / "tiny.json"
    source.write_text(json.dumps(TINY_ROWS, indent=2))
    # The shared helper follows params.yaml's layout; 4 rows and 1 prompt keep the run short.
    params_path = pipeline_params(tmp_path, source, [str(tiny_model)], ingest__limit=4, score__num_prompts=1)
    data = tmp_path / "data"

    env = dict(prefect_env, PREFECT_API_URL=url, PREFECT_RUNNER_POLL_FREQUENCY="2")
    log = tmp_path / "serve.log"
    proc = start(
        [
            sys.executable,
            "-m",
            "flows.serve",
            "--params",
            str(params_path),
            "--data",
            str(data),
            "--cron",
            CRON,
            "--name",
            DEPLOYMENT,
        ],
        env,
        log,
    )
    try:
        yield {
            "url": url,
            "data": data,
            "procs": {"prefect server": (server_proc, server_log), "flows.serve": (proc, log)},
        }
    finally:
        stop(proc)


def test_served_pipeline_is_scheduled_and_a_run_completes(served, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    procs = served["procs"]
    with (
        temporary_settings({PREFECT_API_URL: served["url"], PREFECT_HOME: tmp_path / "prefect"}),
        get_client(sync_client=True) as client,
    ):

        def deployment():
            try:
                return client.read_deployment_by_name(f"selectit-pipeline/{DEPLOYMENT}")
            except ObjectNotFound:
                return None

        dep = wait_for("deployment", deployment, 120, procs, every=2)
        assert [s.schedule.cron for s in dep.schedules] == [CRON]
        assert dep.parameters["data_dir"] == str(served["data"])
        assert dep.parameters["progress"] is False
        assert dep.parameters["run_audit"] is False  # nightly runs skip the audit

        def future_scheduled_runs():
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])))
            now = datetime.now(UTC)
            return [r for r in runs if r.state_type == StateType.SCHEDULED and r.expected_start_time > now]

        scheduled = wait_for("scheduled runs", future_scheduled_runs, 60, procs)
        assert all(r.expected_start_time.second == 0 for r in scheduled)  # every minute, on the minute

        run = client.create_flow_run_from_deployment(dep.id, tags=["test-now"])

        def finished():
            state = client.read_flow_run(run.id).state
            return state if state is not None and state.is_final() else None

        state = wait_for(f"final state of flow run {run.id}", finished, 240, procs, every=2)
        log = procs["flows.serve"][1]
        assert state.type == StateType.COMPLETED, f"{state.type}: {state.message}\n{tail(log)}"
    assert (served["data"] / "selected" / "selective_alpaca.json").is_file()
