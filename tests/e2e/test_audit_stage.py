"""The audit stage in the pipeline: its metrics on the stage's and the pipeline's MLflow runs."""

from __future__ import annotations

import json

import pytest
from helpers import TINY_PAIRS, TINY_ROWS, pipeline_params, stage_context, write_pairs


@pytest.mark.slow
def test_audit_stage_logs_its_metrics_on_the_stage_and_pipeline_runs(tmp_path, tiny_model, prefect_harness):
    from mlflow import MlflowClient

    from flows.audit import audit_flow

    source = tmp_path / "source.json"
    source.write_text(json.dumps(TINY_ROWS))
    pairs = write_pairs(tmp_path / "pairs.jsonl", [p for p in TINY_PAIRS if "response_b" in p])
    params = pipeline_params(
        tmp_path, source, [str(tiny_model)], audit__enabled=True, audit__pairs=pairs, audit__limit=3
    )
    data = tmp_path / "data"
    summary = audit_flow(stage_context(params, data))
    assert summary.enabled and summary.pairs == 3 and summary.rejects == 0
    report = json.loads((data / "reports" / "audit" / "audit.json").read_text())
    assert report["pairs"] == 3 and report["settings"]["audit"]["limit"] == 3
    assert (data / "cache" / "audit" / "tiny-llama").is_dir()  # its own shard cache, not the score stage's

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "selectit"]
    runs = client.search_runs([experiment.experiment_id])
    (stage,) = [r for r in runs if r.info.run_name == "audit"]
    (parent,) = [r for r in runs if r.info.run_id == stage.data.tags["mlflow.parentRunId"]]
    model = report["scorers"][0]["all"]
    for run in (stage, parent):
        assert run.data.metrics["audit.agreement"] == pytest.approx(model["agreement"])
        assert run.data.metrics["audit.pairs"] == 3
        assert "audit.agreement_shorter_wins" in run.data.metrics and "audit.length.agreement" in run.data.metrics
    assert stage.data.tags["audit.pairs_sha256"] == report["pairs_sha256"]

    # Switched off, the stage rates nothing and says so (DVC still finds its outputs).
    off = pipeline_params(tmp_path, source, [str(tiny_model)], audit__enabled=False, audit__pairs=pairs)
    assert not audit_flow(stage_context(off, data)).enabled
    assert "Switched off" in (data / "reports" / "audit" / "audit.md").read_text()
    assert json.loads((data / "reports" / "audit" / "metrics.json").read_text()) == {}
