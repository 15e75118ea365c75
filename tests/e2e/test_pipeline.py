"""The Prefect pipeline on the tiny model: stages, outputs, MLflow runs, incremental re-runs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import (
    GSM8K_QUESTION,
    TINY_ROWS,
    command_env,
    lineage_chain,
    pipeline_params,
    stage_context,
    tiny_benchmarks,
    write_pairs,
)

from selectit.config import SelectConfig

MORE_ROWS = [
    {"instruction": f"What is {a} plus {b}?", "input": "", "output": f"{a} plus {b} is {a + b}."}
    for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]
]


VARIANTS = ["selectit", "random", "length", "ifd", "learned", "bottom", "full", "base"]
SELECTOR_PAIRS = [
    {
        "pair_id": f"p{i}",
        "instruction": f"What is {10**i} plus 1?",
        "response_a": f"{10**i} plus 1 is {10**i + 1}.",
        "response_b": f"{10**i + 1}",
        "preferred": "ab"[i % 2],
    }
    for i in range(6)
]


# Rows the validate stage's hygiene pass removes: a copied GSM8K question, and TINY_ROWS[3] with
# other punctuation (the suite's exact-content check keeps it; its words are the same).
PLANTED = [
    {"instruction": "Solve this.", "input": GSM8K_QUESTION, "output": "She makes $18 every day."},
    {**TINY_ROWS[3], "output": "Bonjour!"},
]


@pytest.fixture
def project(tmp_path, tiny_model, prefect_harness):
    source = tmp_path / "source.json"
    source.write_text(json.dumps(TINY_ROWS + MORE_ROWS + PLANTED))
    twin = tmp_path / "twin-llama"
    twin.symlink_to(tiny_model, target_is_directory=True)
    # Every selector is a variant: `ifd` and `learned` run their models in the select stage (the
    # learned model fitted on 6 judged pairs, 2 folds).
    pairs = write_pairs(tmp_path / "pairs.jsonl", SELECTOR_PAIRS)
    params = pipeline_params(
        tmp_path,
        source,
        [str(tiny_model), str(twin)],
        hygiene__decontaminate=True,
        evaluate__benchmarks_dir=str(tiny_benchmarks(tmp_path / "benchmarks")),
        finetune__variants=VARIANTS,
        select__learned_pairs=pairs,
        select__learned_folds=2,
    )
    return params, tmp_path / "data", source


def test_pipeline_turns_raw_data_into_a_selection_with_a_card(project):
    from flows.pipeline import pipeline_flow

    params, data, _ = project
    results = pipeline_flow(str(params), str(data), progress=False)
    selected = json.loads((data / "selected" / "selective_alpaca.json").read_text())
    assert len(selected) == 4  # half of the 7 scored (3 of 10 held out), rounded
    assert all(set(row) == {"instruction", "input", "output"} for row in selected)
    assert all(row in TINY_ROWS + MORE_ROWS for row in selected)
    card = (data / "selected" / "dataset_card.md").read_text()
    for section in ("## Source", "## Counts", "## Raters", "## Scores", "## Settings", "## Reproduce", "## Licence"):
        assert section in card
    settings = yaml.safe_load(card.split("## Settings")[1].split("```yaml")[1].split("```")[0])
    assert settings["select"]["ratio"] == 0.5
    assert settings["score"]["cue"] == "\n\nRating: "  # YAML keeps the newlines of the cue readable
    assert settings["ingest"]["source"] == "source.json"  # as params.yaml names it, not an absolute path
    source_section = card.split("## Source")[1].split("## Counts")[0]
    assert "| `source.json` |" in source_section and str(params.parent) not in source_section
    assert (data / "reports" / "validation" / "index.html").is_file()
    # The hygiene pass: the GSM8K question and the near-duplicate are rejects, never scored.
    assert results.stages["validate"].contaminated == {"gsm8k": 1} and results.stages["validate"].near_duplicates == 1
    assert "| of them contaminated by gsm8k | 1 |" in card and "| of them near duplicates | 1 |" in card
    assert results.stages["score@" + str(project[0].parent / "twin-llama")].texts_run == 14  # 7 examples x 2 prompts
    # The embeddings (score.embeddings: first-rater) of exactly the scored examples, from the first rater's pass.
    from selectit.core.embeddings import read_embeddings

    ids, vectors = read_embeddings(data / "embeddings" / "embeddings.parquet")
    assert ids == pq.read_table(data / "aggregated" / "scores.parquet")["example_id"].to_pylist()
    assert vectors.shape == (7, 64) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    embeddings = results.stages["aggregate"].embeddings
    assert embeddings["model"] == "tiny-llama" and embeddings["rows"] == 7 and embeddings["dim"] == 64
    assert (embeddings["layer"], embeddings["of_layers"], embeddings["pooling"]) == (2, 2, "mean")  # round(0.75 x 2)
    (first,) = [s for name, s in results.stages.items() if name.startswith("score@") and name.endswith("/tiny-llama")]
    assert first.embeddings["rows"] == 7
    assert results.stages["score@" + str(project[0].parent / "twin-llama")].embeddings is None

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{params.parent / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "selectit"]
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].data.params["select.ratio"] == "0.5"
    children = {r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    variants = VARIANTS
    tail = {f"{stage}@{v}" for stage in ("finetune", "evaluate") for v in variants} | {"compare", "report"}
    # 6: ingest, validate, two score runs, aggregate, select; the audit is switched off and notes so
    assert {"ingest", "validate", "aggregate", "select", "audit"} | tail <= children
    assert len(children) == 7 + len(tail)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.tags.get("git_commit") for r in runs)  # provenance on every run
    assert all(r.data.tags.get("code_version", "").startswith("0.") for r in runs)
    # The parent run carries each stage's headline metrics, for MLflow's run table and compare view.
    parent_metrics = parents[0].data.metrics
    assert parent_metrics["ingest.examples"] == 12 and parent_metrics["select.selected"] == 4
    assert parent_metrics["validate.contaminated"] == 1 and parent_metrics["validate.near_duplicates"] == 1
    assert parent_metrics["aggregate.examples"] == 7 and "aggregate.score_median" in parent_metrics
    assert parent_metrics["score_twin-llama.texts_run"] == 14

    # The selectors' scores of every scored example, the learned model (JSON) and its MLflow record.
    method_scores = pq.read_table(data / "selected" / "method_scores.parquet")
    assert method_scores.column_names == ["example_id", "ifd", "learned"] and method_scores.num_rows == 7
    learned = json.loads((data / "selected" / "learned_model.json").read_text())
    assert learned["pairs"] == 6 and len(learned["coefficients"]) == len(learned["names"])
    (select_run,) = [r for r in runs if r.info.run_name == "select"]
    assert select_run.data.metrics["learned_pairs"] == 6 and "learned_cv_agreement" in select_run.data.metrics

    # Fine-tuning and evaluation: every variant, compared with `random` on the held-out loss.
    assert results.stages["finetune@selectit"].examples == 4 and results.stages["finetune@full"].examples == 7
    assert all(results.stages[f"finetune@{v}"].examples == 4 for v in ("length", "ifd", "learned"))
    assert results.stages["finetune@base"].steps == 0 and results.stages["finetune@selectit"].steps == 1
    comparison = json.loads((data / "reports" / "comparison" / "comparison.json").read_text())
    assert set(comparison["variants"]) == set(variants) and comparison["reference"] == "random"
    nll = comparison["variants"]["selectit"]["heldout_nll"]
    assert nll["n"] == 3 and nll["low"] <= nll["mean"] <= nll["high"]
    assert nll["vs_reference"]["verdict"] in ("better", "worse", "no clear difference")
    dvc_metrics = json.loads((data / "reports" / "comparison" / "metrics.json").read_text())
    assert dvc_metrics["selectit"]["heldout_nll"] == pytest.approx(nll["mean"])
    assert parent_metrics["selectit.heldout_nll"] == pytest.approx(nll["mean"])
    assert "selectit.heldout_nll_vs_random" in parent_metrics
    # Preference accuracy on the params' two judged pairs, in the same places; the base model ties on each.
    preference = comparison["variants"]["selectit"]["preference_accuracy"]
    assert preference["n"] == 2 and comparison["variants"]["base"]["preference_accuracy"]["mean"] == 0.5
    assert dvc_metrics["selectit"]["preference_accuracy"] == pytest.approx(preference["mean"])
    assert parent_metrics["selectit.preference_accuracy"] == pytest.approx(preference["mean"])

    # Lineage: the number -> the variant's evaluate run -> its finetune run -> the select run
    # -> the aggregate run -> validate -> ingest, each link a tagged run id with file hashes.
    chain = lineage_chain(runs, "evaluate@selectit")
    assert chain == ["evaluate@selectit", "finetune@selectit", "select", "aggregate", "validate", "ingest"]


def _ids(path) -> set[str]:
    return {json.loads(line)["id"] for line in path.read_text().splitlines()}


def test_appended_rows_are_the_only_ones_rated_again(project):
    from flows.ingest import ingest_flow
    from flows.score import score_flow
    from flows.validate import validate_flow

    params, data, source = project
    rater = str(params.parent / "twin-llama")
    ingest_flow(stage_context(params, data))
    validate_flow(stage_context(params, data))
    first = score_flow(stage_context(params, data), rater)
    scored_before = _ids(data / "validated" / "examples.jsonl")
    heldout_before = _ids(data / "validated" / "heldout.jsonl")
    assert first.texts_run == 2 * len(scored_before) == 14

    appended = [
        {"instruction": "Name a fruit.", "input": "", "output": "Apple."},
        {"instruction": "Name a tree.", "input": "", "output": "Oak."},
    ]
    source.write_text(json.dumps(TINY_ROWS + MORE_ROWS + appended))
    ingest_flow(stage_context(params, data))
    validate_flow(stage_context(params, data))
    second = score_flow(stage_context(params, data), rater)
    scored = _ids(data / "validated" / "examples.jsonl")
    # Held out by content: the old rows stay where they were; only new rows are rated.
    assert _ids(data / "validated" / "heldout.jsonl") & (scored_before | heldout_before) == heldout_before
    assert scored_before < scored
    assert second.texts_run == 2 * len(scored - scored_before)  # the old ones come from the cache
    ratings = pq.read_table(data / "scores" / "twin-llama" / "ratings.parquet")
    assert ratings.num_rows == 2 * len(scored) and set(ratings["example_id"].to_pylist()) == scored

    third = score_flow(stage_context(params, data), rater)
    assert third.texts_run == 0
    assert pq.read_table(data / "scores" / "twin-llama" / "ratings.parquet").equals(ratings)


def test_aggregate_stage_scores_with_the_configured_token_level(project):
    """aggregate.token_score switches the aggregate stage between the paper's token score and
    the expected rating, from the same stored ratings; the summary and MLflow record which."""
    import numpy as np

    from flows.aggregate import aggregate_flow
    from flows.ingest import ingest_flow
    from flows.score import score_flow
    from flows.validate import validate_flow
    from selectit.scoring.tables import aggregate, read_ratings

    params, data, _ = project
    context = stage_context(params, data)
    ingest_flow(context)
    validate_flow(context)
    raters = [str(params.parent / "twin-llama")]
    raw = yaml.safe_load(params.read_text())
    raw["score"]["raters"] = raters
    model_scores = {}
    for token_score in ("paper", "expected"):
        raw["aggregate"]["token_score"] = token_score
        params.write_text(yaml.safe_dump(raw))
        context = stage_context(params, data)
        score_flow(context, raters[0])  # rated once; the second time from the cache
        summary = aggregate_flow(context)
        assert summary.settings["aggregate"]["token_score"] == token_score
        scores = pq.read_table(context.layout.scores_table)
        ratings = read_ratings(context.layout.ratings_table("twin-llama"))
        by_hand, _ = aggregate(ratings, raw["aggregate"]["alpha"], False, None, token_score)
        assert scores.equals(by_hand)
        model_scores[token_score] = scores.sort_by("example_id")["model_score"].to_numpy()
    assert not np.allclose(model_scores["paper"], model_scores["expected"])

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{params.parent / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "selectit"]
    runs = client.search_runs([experiment.experiment_id], "attributes.run_name = 'aggregate'")
    assert sorted(r.data.params["aggregate.token_score"] for r in runs) == ["expected", "paper"]


def test_bad_source_and_bad_params_fail_with_a_clear_message(project, tmp_path):
    from flows.ingest import ingest_flow
    from selectit.config import ParamsError
    from selectit.core.errors import InputError

    params, data, source = project
    source.write_text("")
    with pytest.raises(InputError, match="source.json.*empty"):
        ingest_flow(stage_context(params, data))
    assert not (data / "ingested" / "examples.jsonl").exists()  # nothing a next stage could take as complete
    broken = pipeline_params(tmp_path, source, ["x"], select__ratios=0.5)
    with pytest.raises(ParamsError, match="select: unknown key"):
        ingest_flow(stage_context(broken, data))


def test_a_stage_refuses_the_outputs_of_a_failed_or_different_upstream_run(project):
    from flows.ingest import ingest_flow
    from flows.validate import validate_flow
    from selectit.core.errors import InputError

    params, data, source = project
    ingest_flow(stage_context(params, data))
    source.write_text(json.dumps(TINY_ROWS))  # the source changes after ingest
    with pytest.raises(InputError, match=r"source.json changed since it was ingested: run the ingest stage again"):
        validate_flow(stage_context(params, data))

    ingest_flow(stage_context(params, data))
    raw = yaml.safe_load(params.read_text())
    raw["ingest"]["limit"] = 3  # the settings change after ingest
    params.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match=r"ingested was made with other settings \(ingest.limit was None, is now 3\)"):
        validate_flow(stage_context(params, data))

    source.write_text("")  # ingest fails: what the last good run left must not be taken
    with pytest.raises(InputError, match="empty"):
        ingest_flow(stage_context(params, data))
    with pytest.raises(InputError, match=r"summary.json: missing \(its stage has not finished\); run the ingest stage"):
        validate_flow(stage_context(params, data))


def _stage_command(module: str, params, tmp_path, *extra: str):
    """`python -m flows.<module>` as DVC runs it, in its own Prefect home."""
    import subprocess
    import sys

    from helpers import ROOT

    return subprocess.run(
        [sys.executable, "-m", f"flows.{module}", "--params", str(params), "--data", str(tmp_path / "data"), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        # A hang guard: a fresh Prefect home migrates a new database first, over a minute on a busy 2-core machine.
        timeout=300,
        env=command_env(tmp_path / "prefect"),
    )


def test_stage_command_reports_a_params_typo_in_one_line(tmp_path, tiny_alpaca):
    params = pipeline_params(tmp_path, tiny_alpaca, ["x"], select__ratoi=0.3)
    done = _stage_command("select", params, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"select: error: {params}: select: unknown key(s) ['ratoi']; expected keys: "
        f"{[f.name for f in dataclasses.fields(SelectConfig)]}"
    )
    assert "Traceback" not in done.stderr


def test_a_stage_that_fails_on_bad_input_shows_one_line_without_prefects_tracebacks(tmp_path):
    params = pipeline_params(tmp_path, tmp_path / "missing.json", ["x"])
    done = _stage_command("ingest", params, tmp_path)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert errors == [f"ingest: error: {tmp_path / 'missing.json'}: no such file"], done.stderr[-3000:]
    assert "Traceback" not in done.stderr


def test_with_fine_tuning_switched_off_its_stages_write_a_note_so_dvc_repro_reaches_the_report(tmp_path, tiny_alpaca):
    from selectit.core.layout import Layout
    from selectit.evaluation.comparison import load_comparison

    params = pipeline_params(tmp_path, tiny_alpaca, ["x"], finetune__enabled=False)
    layout = Layout(tmp_path / "data")
    stale = layout.finetuned("random") / "summary.json"  # an earlier run's result must not pass for this one's
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    for module, variant in [("finetune", "random"), ("evaluate", "random"), ("compare", None)]:
        done = _stage_command(module, params, tmp_path, *(["--variant", variant] if variant else []))
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip().startswith(f"{module}: switched off (finetune.enabled: false in {params})")
    assert not stale.exists()
    assert "finetune.enabled: false" in (layout.finetuned("random") / "SWITCHED_OFF.md").read_text()
    assert (layout.finetune_checkpoints("random")).is_dir()  # DVC's persisted output
    assert "finetune.enabled: false" in (layout.evaluation("random") / "SWITCHED_OFF.md").read_text()
    assert "finetune.enabled: false" in (layout.comparison / "comparison.md").read_text()
    assert load_comparison(layout.comparison / "comparison.json") is None  # the report: no comparison, and why
