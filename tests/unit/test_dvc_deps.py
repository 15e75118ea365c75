"""dvc.yaml is the stage registry's (selectit/stages.py), and the registry holds together.

dvc.yaml is generated: each stage's code deps are the project files its flow
module loads (`project_modules`), so a stage whose code changed re-runs and no
other does; a hand edit, or a registry change not written out, shows here."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml
from helpers import ROOT

from selectit.config import load_params
from selectit.core.errors import InputError
from selectit.core.layout import Layout
from selectit.core.stages import Stage, stage_id
from selectit.stages import STAGES, check_ingested, dvc_yaml, load_current
from selectit.summaries import IngestSummary

_INTERPOLATION = re.compile(r"\$\{\s*([^}]+?)\s*\}")


def test_the_committed_dvc_yaml_is_the_generated_one():
    committed = (ROOT / "dvc.yaml").read_text(encoding="utf-8")
    assert committed == dvc_yaml(ROOT), (
        "dvc.yaml differs from what selectit/stages.py generates (a stage's imports or the registry "
        "changed, or dvc.yaml was edited by hand): run `make dvc-yaml` and commit dvc.yaml"
    )


def test_every_stage_is_registered_and_runs_its_flow_module():
    assert list(STAGES) == list(Stage)
    for stage, spec in STAGES.items():
        assert spec.stage == stage
        assert spec.flow_module == f"flows.{stage}"
        assert (ROOT / "flows" / f"{stage}.py").is_file(), f"{stage}: no flows/{stage}.py for `{spec.cmd}`"
        assert f"flows/{stage}.py" in spec.code_deps(ROOT)
        if spec.summary is not None:
            assert stage == spec.summary.STAGE, f"{spec.summary.__name__} says it is {spec.summary.STAGE}'s"


def _lookup(dotted: str, params: dict) -> None:
    value = params
    for key in dotted.split("."):
        assert isinstance(value, dict) and key in value, f"dvc.yaml names {dotted}, which params.yaml lacks"
        value = value[key]


def test_what_dvc_yaml_names_is_in_params_yaml():
    """DVC refuses a stage whose ${...} or params key is not in params.yaml."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for spec in STAGES.values():
        for entry in (*spec.deps, *spec.outs):
            for name in _INTERPOLATION.findall(entry.value):
                if name != "item":
                    _lookup(name, params)
        for entry in spec.params:
            _lookup(entry.value, params)
        if spec.foreach:
            _lookup(spec.foreach, params)
            assert "${item}" in spec.cmd and any("${item}" in e.value for e in spec.outs), spec.stage


def test_per_item_stages_are_named_as_dvc_expands_them():
    assert stage_id(Stage.SCORE, "gemma3-270m") == "score@gemma3-270m"
    assert stage_id(Stage.EVALUATE, "selectit") == "evaluate@selectit"
    assert stage_id(Stage.INGEST) == "ingest"


@pytest.fixture
def ingested(tmp_path):
    """A data folder whose ingest summary records params.yaml's ingest section as it is."""
    params = load_params(ROOT / "params.yaml")
    layout = Layout(tmp_path)
    summary = IngestSummary([], 0, 0, 0, 0, settings={"ingest": dataclasses.asdict(params.ingest)})
    layout.ingested.mkdir()
    summary.save(layout.ingested)
    return params, layout


def test_load_current_takes_outputs_made_with_the_current_sections(ingested):
    params, layout = ingested
    assert isinstance(load_current(Stage.INGEST, layout, params), IngestSummary)
    assert check_ingested(layout, params).examples == 0


def test_load_current_refuses_outputs_made_with_other_settings(ingested):
    params, layout = ingested
    changed = dataclasses.replace(params, ingest=dataclasses.replace(params.ingest, limit=7))
    with pytest.raises(InputError, match=r"ingest\.limit was .*, is now 7\): run the ingest stage again first"):
        load_current(Stage.INGEST, layout, changed)


def test_a_missing_summary_names_the_stage_to_run(tmp_path):
    params = load_params(ROOT / "params.yaml")
    rater = params.score.raters[0]
    with pytest.raises(InputError, match=f"run the score@{re.escape(rater)} stage first"):
        load_current(Stage.SCORE, Layout(tmp_path), params, rater)
