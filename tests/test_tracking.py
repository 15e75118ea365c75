"""MLflow tracking: parent/stage runs, attaching across processes, git and dvc.lock helpers."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from selectit.tracking.runs import (  # noqa: E402
    PipelineTracker,
    default_tracking_uri,
    dvc_stage_hashes,
    flatten,
    git_commit,
)

mlflow = pytest.importorskip("mlflow")


# One SQLite store for the module: creating its tables is the slow part.
@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{(root / 'mlflow.db').as_posix()}"


@pytest.fixture
def tracker(store, tmp_path, request) -> PipelineTracker:
    return PipelineTracker(store, f"exp-{request.node.name}", tmp_path / "data" / ".mlflow_run_id")


def children(client, parent_id: str, experiment_id: str) -> dict[str, object]:
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    return {r.info.run_name: r for r in runs}


def artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            out |= artifact_paths(client, run_id, info.path)
        else:
            out.add(info.path)
    return out


# --------------------------------------------------------------------------- flatten


def test_flatten_nested_lists_none_and_long_values():
    flat = flatten(
        {
            "score": {"k": 5, "raters": ["a", "b"], "weights": {"a": 1.5}, "max_length": None},
            "data": {"limit": None, "shuffle": True, "filters": [], "extra": {}},
            "prompts": [{"id": 0}, {"id": 1}],
        }
    )
    assert flat == {
        "score.k": "5",
        "score.raters": "a,b",
        "score.weights.a": "1.5",
        "score.max_length": "null",
        "data.limit": "null",
        "data.shuffle": "true",
        "data.filters": "[]",
        "data.extra": "{}",
        "prompts": '[{"id": 0}, {"id": 1}]',
    }
    assert flatten({"k": 2}, prefix="score") == {"score.k": "2"}

    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    long = flatten({"text": "x" * (MAX_PARAM_VAL_LENGTH + 500), "ok": "y" * 10})
    assert len(long["text"]) == MAX_PARAM_VAL_LENGTH
    assert long["ok"] == "y" * 10


def test_default_tracking_uri(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = default_tracking_uri(tmp_path)
    assert uri == f"sqlite:///{(tmp_path.resolve() / 'mlflow.db').as_posix()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert default_tracking_uri(tmp_path) == "sqlite:///elsewhere.db"


# --------------------------------------------------------------------------- runs


def test_pipeline_with_two_stages(tracker, tmp_path):
    data = tmp_path / "ratings.jsonl"
    data.write_text(
        "\n".join(
            json.dumps({"example_id": f"e{i}", "probs": [0.1, 0.9], "meta": {"n": i}})
            for i in range(4)
        )
    )
    params = {"score": {"k": 5, "raters": ["a", "b"]}, "select": {"ratio": 0.2}}

    with tracker.pipeline("run-1", params, tags={"git.commit": "abc", "dvc.score@a": "123"}) as pid:
        assert tracker.run_id_file.read_text().strip() == pid
        with tracker.stage("ingest", {"data": {"limit": 10}}) as st:
            st.metrics({"rows": 4, "rejects": 0, "nan": float("nan"), "none": None})
            st.text("hello\n", "notes/readme.txt")
            st.dataset(data, name="ratings", context="output")
        with tracker.stage("score@a") as st2:
            st2.metrics({"mass@a": 0.75})
            st2.figure_histogram([0.1, 0.5, 0.5, float("nan"), 0.9], "scores", "plots/scores.png")
            st2.tags({"rater": "a"})

    client = tracker.client
    parent = client.get_run(pid)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["score.k"] == "5"
    assert parent.data.params["score.raters"] == "a,b"
    assert parent.data.params["select.ratio"] == "0.2"
    assert parent.data.tags["git.commit"] == "abc"
    assert parent.data.tags["dvc.score_a"] == "123"  # "@" is not allowed in keys

    kids = children(client, pid, parent.info.experiment_id)
    assert set(kids) == {"ingest", "score@a"}
    ingest, score = kids["ingest"], kids["score@a"]
    assert all(k.info.status == "FINISHED" for k in kids.values())
    assert ingest.data.tags["mlflow.parentRunId"] == pid
    assert ingest.data.params == {"data.limit": "10"}
    assert ingest.data.metrics == {"rows": 4.0, "rejects": 0.0}
    assert score.data.metrics == {"mass_a": 0.75}
    assert score.data.tags["rater"] == "a"

    assert artifact_paths(client, ingest.info.run_id) == {"notes/readme.txt"}
    local = Path(client.download_artifacts(ingest.info.run_id, "notes/readme.txt", str(tmp_path)))
    assert local.read_text() == "hello\n"
    png = Path(client.download_artifacts(score.info.run_id, "plots/scores.png", str(tmp_path)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # artifacts live next to the database, not in the current directory
    assert ingest.info.artifact_uri.startswith(Path(tracker.tracking_uri[10:]).parent.as_uri())

    inputs = ingest.inputs.dataset_inputs
    assert len(inputs) == 1
    assert inputs[0].dataset.name == "ratings"
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "output"
    assert json.loads(inputs[0].dataset.source)["uri"] == str(data)
    assert json.loads(inputs[0].dataset.profile)["num_rows"] == 4


def test_stage_in_separate_process_attaches_to_parent(tracker, store):
    with tracker.pipeline("run-2", {"a": 1}) as pid:
        with tracker.stage("ingest"):
            pass
    # a fresh tracker, as `python -m flows.select` would build it, reads run_id_file
    other = PipelineTracker(store, tracker.experiment, tracker.run_id_file)
    with other.stage("select", {"select": {"ratio": 0.1}}) as st:
        assert st.parent_run_id == pid
        st.metrics({"selected": 3})

    client = other.client
    parent = client.get_run(pid)
    kids = children(client, pid, parent.info.experiment_id)
    assert set(kids) == {"ingest", "select"}
    assert kids["select"].data.metrics == {"selected": 3.0}
    assert parent.info.status == "FINISHED"
    assert tracker.run_id_file.read_text().strip() == pid


def test_second_tracker_inside_pipeline_leaves_parent_running(tracker, store):
    with tracker.pipeline("run-3", {}) as pid:
        other = PipelineTracker(store, tracker.experiment, tracker.run_id_file)
        with other.stage("validate") as st:
            assert st.parent_run_id == pid
        assert other.client.get_run(pid).info.status == "RUNNING"
    assert tracker.client.get_run(pid).info.status == "FINISHED"


def test_missing_or_stale_run_id_file_starts_new_parent(tracker):
    assert not tracker.run_id_file.exists()
    with tracker.stage("aggregate") as st:
        first = st.parent_run_id
    assert tracker.run_id_file.read_text().strip() == first
    client = tracker.client
    parent = client.get_run(first)
    assert parent.info.run_name == "pipeline"
    assert parent.info.status == "FINISHED"
    assert client.get_run(st.run_id).data.tags["mlflow.parentRunId"] == first

    tracker.run_id_file.write_text("0123456789abcdef0123456789abcdef\n")  # no such run
    with tracker.stage("aggregate") as st:
        second = st.parent_run_id
    assert second != first
    assert tracker.run_id_file.read_text().strip() == second


def test_exception_in_stage_marks_failed_and_reraises(tracker):
    with pytest.raises(ZeroDivisionError):
        with tracker.pipeline("run-4", {}) as pid:
            with tracker.stage("score@b") as st:
                failed_id = st.run_id
                1 / 0
    client = tracker.client
    assert client.get_run(failed_id).info.status == "FAILED"
    assert client.get_run(pid).info.status == "FAILED"

    # outside pipeline(): the failed stage fails its parent too; a rerun that works finishes it
    with pytest.raises(RuntimeError, match="boom"):
        with tracker.stage("select") as st:
            raise RuntimeError("boom")
    assert client.get_run(st.run_id).info.status == "FAILED"
    assert client.get_run(st.parent_run_id).info.status == "FAILED"


def test_two_stores_in_one_process_stay_apart(tmp_path, tracker):
    other_store = f"sqlite:///{(tmp_path / 'other.db').as_posix()}"
    other = PipelineTracker(other_store, tracker.experiment, tmp_path / "other_id")
    with tracker.pipeline("a", {"x": 1}) as a_id:
        with other.stage("select") as st:
            b_id = st.parent_run_id
    assert a_id != b_id
    assert tracker.client.get_run(a_id).data.params == {"x": "1"}
    with pytest.raises(mlflow.exceptions.MlflowException):
        tracker.client.get_run(b_id)
    assert other.client.get_run(b_id).info.run_name == "pipeline"


# --------------------------------------------------------------------------- git and dvc


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_git_commit(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_commit(outside) is None

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "first")
    sha = _git(repo, "rev-parse", "HEAD")
    assert git_commit(repo) == sha
    (repo / "untracked.txt").write_text("ignored for dirtiness\n")
    assert git_commit(repo) == sha
    (repo / "a.txt").write_text("two\n")
    assert git_commit(repo) == sha + "-dirty"


LOCK = """\
schema: '2.0'
stages:
  ingest:
    cmd: python -m flows.ingest
    deps:
    - path: ../shared/data/instructions
      hash: md5
      md5: 11111111111111111111111111111111.dir
    params:
      params.yaml:
        data.limit: 200
    outs:
    - path: data/examples.parquet
      hash: md5
      md5: 22222222222222222222222222222222
  score@a:
    cmd: python -m flows.score a
    deps:
    - path: data/examples.parquet
      md5: 22222222222222222222222222222222
    - path: flows/score.py
      md5: 33333333333333333333333333333333
    outs:
    - path: data/scores/a.parquet
      md5: 44444444444444444444444444444444
"""


def test_dvc_stage_hashes(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text(LOCK)
    hashes = dvc_stage_hashes(lock)
    assert set(hashes) == {"dvc.ingest", "dvc.score@a"}
    assert all(len(h) == 12 and int(h, 16) >= 0 for h in hashes.values())
    assert hashes["dvc.ingest"] != hashes["dvc.score@a"]

    # same content, deps listed in another order: same hash
    lock.write_text(
        LOCK.replace(
            "    - path: data/examples.parquet\n      md5: 22222222222222222222222222222222\n"
            "    - path: flows/score.py\n      md5: 33333333333333333333333333333333\n",
            "    - path: flows/score.py\n      md5: 33333333333333333333333333333333\n"
            "    - path: data/examples.parquet\n      md5: 22222222222222222222222222222222\n",
        )
    )
    assert dvc_stage_hashes(lock) == hashes

    lock.write_text(LOCK.replace("44444444444444444444444444444444", "55555555555555555555555555555555"))
    changed = dvc_stage_hashes(lock)
    assert changed["dvc.score@a"] != hashes["dvc.score@a"]
    assert changed["dvc.ingest"] == hashes["dvc.ingest"]

    lock.write_text(LOCK.replace("data.limit: 200", "data.limit: 300"))
    assert dvc_stage_hashes(lock)["dvc.ingest"] != hashes["dvc.ingest"]

    assert dvc_stage_hashes(tmp_path / "missing.lock") == {}
