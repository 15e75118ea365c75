"""DVC on a copy of the project: the whole pipeline end to end on a real base model,
a finished run is a no-op, a change re-runs only what it touches, and a pipeline
flow run leaves nothing to re-run."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_the_pipeline_under_dvc_with_a_real_base_model_a_benchmark_and_a_judge(project_copy, judge_server):
    """`dvc repro` end to end with SmolLM2 as the base model, GSM8K through lm-eval and the
    AlpacaEval win rate from a judge on loopback: the DVC metrics, the MLflow runs and the
    lineage; then a change re-runs only the stages it touches."""
    from helpers import lineage_chain
    from mlflow.tracking import MlflowClient

    project = project_copy
    base_url, judge_model = judge_server
    project.params["finetune"]["base_model"] = "smollm2-135m-instruct"
    # One variant with the real model (each costs a fine-tuning and an evaluation); the
    # pipeline-flow test below runs two with the tiny one.
    project.params["finetune"]["variants"] = ["selectit"]
    project.params["evaluate"]["benchmarks"]["gsm8k"] = 1
    project.params["evaluate"]["max_new_tokens"] = 24
    project.params["evaluate"]["judge"].update(base_url=base_url, model=judge_model, questions=2)
    project.write_params()
    first = project.run("dvc", "repro")
    variants = ("selectit",)
    tail = [f"{stage}@{v}" for stage in ("finetune", "evaluate") for v in variants] + ["compare"]
    for stage in ("ingest", "validate", "score@tiny", "aggregate", "select", *tail):
        assert f"Running stage '{stage}'" in first

    # DVC's metrics are the comparison's means, for every variant and measure.
    comparison = json.loads((project.root / "data/reports/comparison/comparison.json").read_text())
    shown = json.loads(project.run("dvc", "metrics", "show", "--json"))
    (metrics,) = [f["data"] for name, f in shown[""]["data"].items() if name.endswith("comparison/metrics.json")]
    for variant in variants:
        cells = comparison["variants"][variant]
        assert {"heldout_nll", "alpaca_eval_win_rate", "gsm8k_exact_match"} <= set(cells)
        assert all(metrics[variant][m] == pytest.approx(cells[m]["mean"]) for m in cells)
        assert cells["alpaca_eval_win_rate"]["n"] == 2 and cells["gsm8k_exact_match"]["n"] == 1

    # MLflow: a run per stage and variant, training losses from the trainer, the same
    # metric names on each variant's evaluate run, and a lineage chain back to the input.
    client = MlflowClient(f"sqlite:///{project.root / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "selectit"]
    runs = client.search_runs([experiment.experiment_id])
    named = {r.info.run_name: r for r in runs}
    assert set(tail) <= set(named) and all(r.info.status == "FINISHED" for r in runs)
    for variant in variants:
        # per-step losses and the run's figures come from transformers' MLflow callback, not the stage's summary
        trained = named[f"finetune@{variant}"]
        assert {"loss", "train_runtime"} <= set(trained.data.metrics)
        assert len(client.get_metric_history(trained.info.run_id, "loss")) == trained.data.metrics["steps"]
        assert set(comparison["variants"][variant]) <= set(named[f"evaluate@{variant}"].data.metrics)
    chain = lineage_chain(runs, "evaluate@selectit")
    assert chain == ["evaluate@selectit", "finetune@selectit", "select", "aggregate", "validate", "ingest"]

    assert "Data and pipelines are up to date" in project.run("dvc", "repro")
    # A setting of the comparison re-runs the comparison only: nothing is re-trained or re-judged.
    project.params["evaluate"]["confidence"] = 0.9
    project.write_params()
    again = project.run("dvc", "repro")
    assert "Running stage 'compare'" in again
    assert "Running stage 'finetune@" not in again and "Running stage 'evaluate@" not in again

    project.params["select"]["ratio"] = 0.9
    project.write_params()
    again = project.run("dvc", "repro", "select")
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
