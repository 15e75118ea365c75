"""MLflow tracking: parent/stage runs, attaching across processes, headline metrics on the parent."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from selectit.plots import histogram_png
from selectit.tracking.runs import PARAM_VALUE_LIMIT, PipelineTracker, default_tracking_uri, flatten

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
    runs = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
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

    long = flatten({"text": "x" * (PARAM_VALUE_LIMIT + 500), "ok": "y" * 10})
    assert len(long["text"]) == PARAM_VALUE_LIMIT
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
    frame = pd.DataFrame({"example_id": [f"e{i}" for i in range(4)], "mass": [0.1, 0.9, 0.5, 0.7]})
    params = {"score": {"k": 5, "raters": ["a", "b"]}, "select": {"ratio": 0.2}}

    with tracker.pipeline("run-1", params) as pid:
        assert tracker.run_id_file.read_text().strip() == pid
        tracker.client.set_tag(pid, "dvc.score_a", "123")
        with tracker.stage("ingest", {"data": {"limit": 10}}, parent_run_id=pid) as st:
            st.metrics({"rows": 4, "rejects": 0, "nan": float("nan"), "none": None}, headline=True)
            st.text("hello\n", "notes/readme.txt")
            st.dataset(frame, source=data, name="ratings", context="output")
        with tracker.stage("score@a", parent_run_id=pid) as st2:
            st2.metrics({"mass@a": 0.75})
            st2.figure(partial(histogram_png, [0.1, 0.5, 0.5, float("nan"), 0.9], "scores"), "plots/scores.png")
            st2.tags({"rater": "a"})

    client = tracker.client
    parent = client.get_run(pid)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["score.k"] == "5"
    assert parent.data.params["score.raters"] == "a,b"
    assert parent.data.params["select.ratio"] == "0.2"
    assert parent.data.tags["dvc.score_a"] == "123"
    # headline metrics are mirrored on the parent, prefixed with the stage; others stay on the stage
    assert parent.data.metrics == {"ingest.rows": 4.0, "ingest.rejects": 0.0}

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
    with tracker.pipeline("run-2", {"a": 1}) as pid, tracker.stage("ingest"):
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


def test_stage_given_the_pipeline_run_leaves_its_status_to_the_pipeline(tracker, store):
    with tracker.pipeline("run-3", {}) as pid:
        other = PipelineTracker(store, tracker.experiment, tracker.run_id_file)
        with other.stage("validate", parent_run_id=pid) as st:
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
    with pytest.raises(ZeroDivisionError), tracker.pipeline("run-4", {}) as pid:  # noqa: SIM117 (pid is needed)
        with tracker.stage("score@b", parent_run_id=pid) as st:
            failed_id = st.run_id
            _ = 1 / 0
    client = tracker.client
    assert client.get_run(failed_id).info.status == "FAILED"
    assert client.get_run(pid).info.status == "FAILED"

    # outside pipeline(): the failed stage fails its parent too; a rerun that works finishes it
    with pytest.raises(RuntimeError, match="boom"), tracker.stage("select") as st:
        raise RuntimeError("boom")
    assert client.get_run(st.run_id).info.status == "FAILED"
    assert client.get_run(st.parent_run_id).info.status == "FAILED"


def test_two_stores_in_one_process_stay_apart(tmp_path, tracker):
    other_store = f"sqlite:///{(tmp_path / 'other.db').as_posix()}"
    other = PipelineTracker(other_store, tracker.experiment, tmp_path / "other_id")
    with tracker.pipeline("a", {"x": 1}) as a_id, other.stage("select", new_parent=True) as st:
        b_id = st.parent_run_id
    assert a_id != b_id
    assert tracker.client.get_run(a_id).data.params == {"x": "1"}
    with pytest.raises(mlflow.exceptions.MlflowException):
        tracker.client.get_run(b_id)
    assert other.client.get_run(b_id).info.run_name == "pipeline"
