"""DVC on a copy of the project: a finished run is a no-op, a change to `select`
params re-runs only `select`, and a pipeline flow run leaves nothing to re-run."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_dvc_repro_reruns_only_what_changed(project_copy):
    project = project_copy
    first = project.run("dvc", "repro")
    for stage in ("ingest", "validate", "score@tiny", "aggregate", "select"):
        assert f"Running stage '{stage}'" in first
    assert json.loads((project.root / "data/selected/selective_alpaca.json").read_text())

    assert "Data and pipelines are up to date" in project.run("dvc", "repro")

    project.params["select"]["ratio"] = 0.9
    project.write_params()
    again = project.run("dvc", "repro")
    assert "Running stage 'select'" in again
    for stage in ("ingest", "validate", "score@tiny", "aggregate"):
        assert f"Running stage '{stage}'" not in again
    assert (
        len(json.loads((project.root / "data/selected/selective_alpaca.json").read_text())) == 4
    )  # 90% of the 4 scored (2 of 6 held out)


def test_a_pipeline_flow_run_leaves_dvc_up_to_date(project_copy):
    """`make run` (the pipeline flow, not DVC) records each stage as `dvc repro` would."""
    project = project_copy
    project.run("python", "-m", "flows.pipeline", "--no-progress")
    assert json.loads(project.run("dvc", "status", "--json")) == {}
    assert "Data and pipelines are up to date" in project.run("dvc", "repro")
