"""The team stack (stack/stack.py: PostgreSQL, an MLflow server, a Prefect server, a process
work pool and its worker) on 127.0.0.1, started once for this module, with the pipeline on
the tiny model in a git copy of the project:

- the deployment of prefect.yaml, deployed with `prefect deploy`, runs through the worker
  while a second clone runs the pipeline against the same servers at the same time; both
  finish, each with its own MLflow parent run;
- the flow run's state from Prefect's REST API, runs and metrics from MLflow's REST API
  (PostgreSQL behind it), an artifact the client uploaded over HTTP, fetched over HTTP;
- `dvc push`, a fresh clone, `dvc pull`: `dvc status` is up to date, nothing re-runs;
- the worker SIGKILLed mid-run: the run Crashed, a new run resumes from the cached shards;
- PostgreSQL stopped under a run: one line of error naming the MLflow server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from helpers import ROOT, ProjectCopy

pytestmark = [pytest.mark.slow, pytest.mark.server]

DEPLOYMENT = "selectit-pipeline/selectit-nightly"
RUN_TIMEOUT_S = 900  # two tiny pipelines at once on a busy 2-core machine


def _postgres_installed() -> bool:
    return shutil.which("initdb") is not None or any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


class Team:
    """The stack's addresses and the project copy whose worker it runs."""

    def __init__(self, folder: Path, project: ProjectCopy):
        self.folder = folder
        self.project = project
        settings = json.loads((folder / "stack.json").read_text())
        self.mlflow = f"http://127.0.0.1:{settings['mlflow_port']}"
        self.prefect_api = f"http://127.0.0.1:{settings['prefect_port']}/api"

    def prefect(self, method: str, path: str, body: dict | None = None):
        return _http_json(method, f"{self.prefect_api}{path}", body)

    def mlflow_api(self, method: str, path: str, body: dict | None = None):
        return _http_json(method, f"{self.mlflow}/api/2.0/mlflow{path}", body)


def _http_json(method: str, url: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def _stack(project: ProjectCopy, folder: Path, command: str) -> subprocess.CompletedProcess:
    # Every run on this stack beats every 30 s (its worker's, and the direct ones: project.env),
    # so a silent one can be marked Crashed after 90 s rather than the default 600 s.
    env = {**project.env, "STACK_DIR": str(folder), "STACK_CRASHED_AFTER_S": "90"}
    return subprocess.run(
        [sys.executable, str(project.root / "stack" / "stack.py"), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def team(tmp_path_factory, tiny_model):
    if not _postgres_installed():
        pytest.skip("PostgreSQL is not installed (`make postgres` installs Debian's package; `make test` does)")
    project = ProjectCopy(tmp_path_factory.mktemp("team"), tiny_model)
    # Under root, PostgreSQL runs as the postgres user, which must reach its folder: pytest's
    # temporary folders are private to root, so the stack lives in a folder others may enter.
    folder = Path(tempfile.mkdtemp(prefix="selectit-stack-"))
    folder.chmod(0o755)
    started = time.perf_counter()
    up = _stack(project, folder, "up")
    print(f"stack up in {time.perf_counter() - started:.0f} s")
    try:
        assert up.returncode == 0, f"stack up failed:\n{up.stdout}\n{up.stderr}\n" + "\n".join(
            f"--- {log.name}\n{log.read_text()[-2000:]}" for log in folder.glob("*.log")
        )
        team = Team(folder, project)
        project.env["PREFECT_API_URL"] = team.prefect_api
        project.env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = "30"
        project.params["tracking"]["tracking_uri"] = team.mlflow
        project.write_params()
        remote = folder.parent / f"{folder.name}-dvc-remote"
        project.run("dvc", "remote", "add", "-d", "team", str(remote))
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
        project.run(*git, "commit", "-qam", "the team's servers and DVC remote")
        project.run("prefect", "--no-prompt", "deploy", "--all")
        yield team
    finally:
        down = _stack(project, folder, "down")
        assert down.returncode == 0, down.stderr
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(folder.parent / f"{folder.name}-dvc-remote", ignore_errors=True)


def test_a_deployment_run_through_the_worker_and_a_second_run_at_once(team, tmp_path):
    """The worker runs the deployment while a second clone runs the pipeline itself, both
    against the same servers: both finish, each with a parent run of its own data folder."""
    project = team.project
    second = tmp_path / "second"
    project.run("git", "clone", "-q", str(project.root), str(second))
    deployment = team.prefect("GET", f"/deployments/name/{DEPLOYMENT}")
    assert deployment["work_pool_name"] == "selectit"
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 3 * * *"]

    flow_run = team.prefect("POST", f"/deployments/{deployment['id']}/create_flow_run", {})
    env = {**project.env, "PYTHONPATH": str(second)}
    with (tmp_path / "second.log").open("w") as log:  # the child keeps its own copy of the descriptor
        at_once = subprocess.Popen(
            [sys.executable, "-m", "flows.pipeline", "--no-progress"], cwd=second, env=env, stdout=log, stderr=log
        )
    started = time.perf_counter()
    try:
        state = _wait_for_end(team, flow_run["id"])
        assert at_once.wait(timeout=RUN_TIMEOUT_S) == 0, (tmp_path / "second.log").read_text()[-3000:]
    finally:
        if at_once.poll() is None:
            at_once.kill()
    print(f"both pipeline runs finished in {time.perf_counter() - started:.0f} s")
    assert state["type"] == "COMPLETED", (
        f"{state}; the worker's log:\n" + (team.folder / "worker.log").read_text()[-4000:]
    )

    experiment = team.mlflow_api("GET", "/experiments/get-by-name?experiment_name=selectit")["experiment"]
    parents = _search(team, experiment["experiment_id"], "tags.`selectit.role` = 'pipeline'")
    folders = {_tag(run, "selectit.data"): run for run in parents}
    assert set(folders) == {str(project.root / "data"), str(second / "data")}
    for parent in parents:
        assert parent["info"]["status"] == "FINISHED"
        nested = f"tags.`mlflow.parentRunId` = '{parent['info']['run_id']}'"
        children = _search(team, experiment["experiment_id"], nested)
        stages = {child["info"]["run_name"]: child for child in children}
        assert {"ingest", "validate", "aggregate", "select", "compare", "report"} <= set(stages)
        assert {m["key"] for m in stages["select"]["data"]["metrics"]} >= {"selected"}


def test_the_artifacts_go_to_the_server_over_http(team):
    """The client uploaded through the server (`mlflow-artifacts:` URIs), which keeps them in its
    own folder and serves them back over HTTP."""
    experiment = team.mlflow_api("GET", "/experiments/get-by-name?experiment_name=selectit")["experiment"]
    (select, *_) = _search(team, experiment["experiment_id"], "attributes.run_name = 'select'")
    run_id = select["info"]["run_id"]
    assert select["info"]["artifact_uri"].startswith("mlflow-artifacts:/")
    listed = team.mlflow_api("GET", f"/artifacts/list?run_id={run_id}&path=select")
    assert "select/dataset_card.md" in [f["path"] for f in listed["files"]]
    query = urllib.parse.urlencode({"path": "select/dataset_card.md", "run_uuid": run_id})
    with urllib.request.urlopen(f"{team.mlflow}/get-artifact?{query}", timeout=60) as response:
        card = response.read().decode()
    assert card.startswith("#") and "## Counts" in card
    assert list((team.folder / "mlflow-artifacts").rglob("dataset_card.md"))


def test_dvc_push_then_a_fresh_clone_pulls_everything_up_to_date(team, tmp_path):
    """The worker's run recorded its stages in DVC; pushed, a fresh clone pulls data, ratings and
    models, and nothing is left to re-run (the rating shards come too)."""
    project = team.project
    assert json.loads(project.run("dvc", "status", "--json")) == {}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    project.run(*git, "add", "dvc.lock")
    project.run(*git, "commit", "-qm", "a pipeline run")
    project.run("dvc", "push")

    clone = tmp_path / "clone"
    project.run("git", "clone", "-q", str(project.root), str(clone))
    done = subprocess.run(["dvc", "pull"], cwd=clone, env=project.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    status = subprocess.run(["dvc", "status", "--json"], cwd=clone, env=project.env, capture_output=True, text=True)
    assert json.loads(status.stdout) == {}, status.stdout
    assert list((clone / "data" / "cache" / "ratings" / "tiny").rglob("*.parquet"))
    assert (clone / "data" / "selected" / "selective_alpaca.json").is_file()


def _wait_for_end(team: Team, flow_run_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        state = team.prefect("GET", f"/flow_runs/{flow_run_id}")["state"]
        if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state
        time.sleep(3)
    raise AssertionError(f"flow run {flow_run_id} still {state['type']} after {RUN_TIMEOUT_S} s")


def _search(team: Team, experiment_id: str, filter_string: str) -> list[dict]:
    body = {"experiment_ids": [experiment_id], "filter": filter_string, "max_results": 1000}
    return team.mlflow_api("POST", "/runs/search", body).get("runs", [])


def _tag(run: dict, key: str) -> str | None:
    return next((t["value"] for t in run["data"].get("tags", []) if t["key"] == key), None)


def test_a_killed_worker_leaves_its_run_crashed_and_a_new_run_resumes_from_the_shards(team):
    """SIGKILL to the worker and the flow run it started (as when its machine dies), once a rating
    shard is finished: the run's heartbeats stop and it is marked Crashed (stack/crashed-runs.yaml);
    a new worker runs the same data folder again, taking the finished shards as they are."""
    project = team.project
    deployment = team.prefect("GET", f"/deployments/name/{DEPLOYMENT}")
    data = project.root / "data-killed"  # a folder of its own: data/ is already rated
    body = {"parameters": {"data_dir": str(data)}}
    killed = team.prefect("POST", f"/deployments/{deployment['id']}/create_flow_run", body)
    shards = data / "cache" / "ratings" / "tiny"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not list(shards.rglob("*.parquet")):
        state = team.prefect("GET", f"/flow_runs/{killed['id']}")["state"]
        assert state["type"] in ("SCHEDULED", "PENDING", "RUNNING"), state
        assert time.monotonic() < deadline, "no rating shard finished"
        time.sleep(0.5)
    finished = {path: path.stat().st_mtime_ns for path in shards.rglob("*.parquet")}
    # The worker, and the flow run it started in a session of its own, at once.
    for group in _stack_module().process_groups(int((team.folder / "worker.pid").read_text())):
        os.killpg(group, signal.SIGKILL)

    up = _stack(project, team.folder, "up")  # starts a new worker: the rest still runs
    assert up.returncode == 0, up.stderr
    assert _wait_for_end(team, killed["id"])["type"] == "CRASHED"
    again = team.prefect("POST", f"/deployments/{deployment['id']}/create_flow_run", body)
    assert _wait_for_end(team, again["id"])["type"] == "COMPLETED"
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())  # taken, not rated again


def test_postgresql_stopped_under_a_run_ends_it_with_one_line_naming_the_tracking_server(team, tmp_path):
    """The tracking server's database stops while a run logs to it (last in this module: the
    stack's PostgreSQL stays down): the run ends with one line naming the MLflow server, and
    leaves nothing half-written under data/. Its Prefect API is a temporary one of its own,
    since the stack's Prefect server lost its database too."""
    project = team.project
    clone = tmp_path / "clone"
    project.run("git", "clone", "-q", str(project.root), str(clone))
    env = {**project.env, "PYTHONPATH": str(clone), "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL")
    env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  # fail at once, not after MLflow's minutes of back-off
    run = subprocess.Popen(
        [sys.executable, "-m", "flows.pipeline", "--no-progress"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        experiment = team.mlflow_api("GET", "/experiments/get-by-name?experiment_name=selectit")["experiment"]
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not any(
            _tag(parent, "selectit.data") == str(clone / "data")
            for parent in _search(team, experiment["experiment_id"], "tags.`selectit.role` = 'pipeline'")
        ):
            assert run.poll() is None and time.monotonic() < deadline, "the run never opened its MLflow run"
            time.sleep(1)
        _pg_ctl(team, "stop", "-m", "immediate")
        _, stderr = run.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 2, stderr[-3000:]
    (error,) = [line for line in stderr.splitlines() if line.startswith("pipeline: error:")]
    assert error.startswith(f"pipeline: error: MLflow tracking server {team.mlflow} failed"), stderr[-3000:]
    assert not [p for p in (clone / "data").rglob("*") if p.name.endswith(".tmp")]  # no file cut short


def _stack_module():
    """stack/stack.py, a script rather than a package, loaded by its path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("selectit_stack", ROOT / "stack" / "stack.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _pg_ctl(team: Team, action: str, *options: str) -> None:
    pg_ctl = shutil.which("pg_ctl") or str(max(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")))
    command = [pg_ctl, action, "-D", str(team.folder / "postgres" / "data"), "-w", *options]
    if os.geteuid() == 0:  # the cluster runs as the postgres user (stack/stack.py)
        command = ["runuser", "-u", os.environ.get("STACK_PG_OS_USER", "postgres"), "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
