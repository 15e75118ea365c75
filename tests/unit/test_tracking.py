"""MLflow tracking: parent/stage runs, attaching across processes, headline metrics on the parent."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
from helpers import ROOT

from selectit.plots import histogram_png
from selectit.tracking.runs import (
    EXPERIMENT_KIND_TAG,
    MACHINE_LEARNING_KIND,
    PARAM_VALUE_LIMIT,
    PipelineTracker,
    default_tracking_uri,
    flatten,
)
from selectit.tracking.ui import find_experiment_id, runs_address

mlflow = pytest.importorskip("mlflow")


# One SQLite store for the module: creating its tables is the slow part.
@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{(root / 'mlflow.db').as_posix()}"


@pytest.fixture
def tracker(store, tmp_path, request) -> PipelineTracker:
    return PipelineTracker(store, f"exp-{request.node.name}")


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


def test_the_experiment_opens_on_its_runs_in_mlflows_ui(tracker, store):
    """MLflow 3's UI shows an experiment of this kind as machine learning (the runs table), not
    as a GenAI app (traces); an experiment made before the tag gets it, a chosen kind stays."""
    client = tracker.client
    made = client.get_experiment(tracker.experiment_id())
    assert made.tags[EXPERIMENT_KIND_TAG] == MACHINE_LEARNING_KIND

    older = client.create_experiment(f"{tracker.experiment}-older")
    chosen = client.create_experiment(f"{tracker.experiment}-chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    PipelineTracker(store, f"{tracker.experiment}-older").experiment_id()
    PipelineTracker(store, f"{tracker.experiment}-chosen").experiment_id()
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == MACHINE_LEARNING_KIND
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_pipeline_with_two_stages(tracker, tmp_path):
    data = tmp_path / "ratings.jsonl"
    frame = pd.DataFrame({"example_id": [f"e{i}" for i in range(4)], "mass": [0.1, 0.9, 0.5, 0.7]})
    params = {"score": {"k": 5, "raters": ["a", "b"]}, "select": {"ratio": 0.2}}

    with tracker.pipeline("run-1", params, tmp_path / "data") as pid:
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


def test_stage_in_separate_process_joins_the_newest_pipeline_run_of_its_data_folder(tracker, store, tmp_path):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    with tracker.pipeline("run-2", {"a": 1}, data) as pid, tracker.stage("ingest", parent_run_id=pid):
        pass
    tracker.open_pipeline_run("other-data", elsewhere)
    # a fresh tracker, as `python -m flows.select` builds it, finds the run by its data folder
    other = PipelineTracker(store, tracker.experiment)
    assert other.find_pipeline_run(data) == pid
    with other.stage("select", {"select": {"ratio": 0.1}}, parent_run_id=pid, parent_takes_status=True) as st:
        assert other.client.get_run(pid).info.status == "RUNNING"
        st.metrics({"selected": 3})

    client = other.client
    parent = client.get_run(pid)
    kids = children(client, pid, parent.info.experiment_id)
    assert set(kids) == {"ingest", "select"}
    assert kids["select"].data.metrics == {"selected": 3.0}
    assert parent.info.status == "FINISHED"


def test_find_pipeline_run_takes_the_newest_and_skips_deleted_runs(tracker, tmp_path):
    data = tmp_path / "data"
    assert tracker.find_pipeline_run(data) is None
    first = tracker.open_pipeline_run("pipeline", data)
    second = tracker.open_pipeline_run("pipeline", data)
    assert tracker.find_pipeline_run(data) == second
    assert tracker.client.get_run(second).data.tags["selectit.data"] == data.resolve().as_posix()
    tracker.client.delete_run(second)
    assert tracker.find_pipeline_run(data) == first


def test_stage_given_the_pipeline_run_leaves_its_status_to_the_pipeline(tracker, store, tmp_path):
    with tracker.pipeline("run-3", {}, tmp_path / "data") as pid:
        other = PipelineTracker(store, tracker.experiment)
        with other.stage("validate", parent_run_id=pid) as st:
            assert st.parent_run_id == pid
        assert other.client.get_run(pid).info.status == "RUNNING"
    assert tracker.client.get_run(pid).info.status == "FINISHED"


def test_exception_in_stage_marks_failed_and_reraises(tracker, tmp_path):
    with pytest.raises(ZeroDivisionError), tracker.pipeline("run-4", {}, tmp_path / "data") as pid:  # noqa: SIM117 (pid is needed)
        with tracker.stage("score@b", parent_run_id=pid) as st:
            failed_id = st.run_id
            _ = 1 / 0
    client = tracker.client
    assert client.get_run(failed_id).info.status == "FAILED"
    assert client.get_run(pid).info.status == "FAILED"

    # a stage on its own fails its parent too; a rerun that works finishes it
    own = tracker.open_pipeline_run("pipeline", tmp_path / "data")
    with (
        pytest.raises(RuntimeError, match="boom"),
        tracker.stage("select", parent_run_id=own, parent_takes_status=True) as st,
    ):
        raise RuntimeError("boom")
    assert client.get_run(st.run_id).info.status == "FAILED"
    assert client.get_run(own).info.status == "FAILED"
    with tracker.stage("select", parent_run_id=own, parent_takes_status=True):
        pass
    assert client.get_run(own).info.status == "FINISHED"


def test_two_stores_in_one_process_stay_apart(tmp_path, tracker):
    other_store = f"sqlite:///{(tmp_path / 'other.db').as_posix()}"
    other = PipelineTracker(other_store, tracker.experiment)
    b_id = other.open_pipeline_run("pipeline", tmp_path / "data")
    with tracker.pipeline("a", {"x": 1}, tmp_path / "data") as a_id, other.stage("select", parent_run_id=b_id):
        pass
    assert a_id != b_id
    assert tracker.client.get_run(a_id).data.params == {"x": "1"}
    with pytest.raises(mlflow.exceptions.MlflowException):
        tracker.client.get_run(b_id)
    assert other.client.get_run(b_id).info.run_name == "pipeline"


def test_a_stage_on_its_own_opens_or_joins_the_pipeline_run_of_its_data_folder(store, tmp_path, monkeypatch):
    from selectit.context import RunContext

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    opened = RunContext.open(ROOT / "params.yaml", tmp_path / "data", ROOT)
    assert opened.parent_run_id is None
    first = opened.on_its_own(new_pipeline_run=False)  # no pipeline run of this folder yet: a new one
    ingest = opened.on_its_own(new_pipeline_run=True)
    later = opened.on_its_own(new_pipeline_run=False)
    assert first.parent_run_id != ingest.parent_run_id == later.parent_run_id
    assert later.parent_takes_stage_status and not later.record_in_dvc
    tags = later.tracker().client.get_run(later.parent_run_id).data.tags
    assert tags["selectit.role"] == "pipeline" and tags["selectit.data"] == (tmp_path / "data").resolve().as_posix()
    assert tags["git_commit"]


def test_the_printed_mlflow_address_opens_the_runs_table(tracker, store, tmp_path):
    experiment_id = find_experiment_id(store, tracker.experiment)
    assert experiment_id is None  # the tracker has not created it yet
    experiment_id = tracker.experiment_id()
    assert find_experiment_id(store, tracker.experiment) == experiment_id
    assert runs_address("http://127.0.0.1:5000/", experiment_id) == (
        f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    )
    # no store yet: the list of experiments, and no store created by asking
    missing = tmp_path / "none" / "mlflow.db"
    assert find_experiment_id(f"sqlite:///{missing}", "selectit") is None
    assert not missing.exists()
    assert runs_address("http://h:1", None) == "http://h:1/#/experiments?workflowType=machine_learning"
