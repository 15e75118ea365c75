"""Recording the real stages in DVC after running each stage command by hand, in a copy of the project."""

from __future__ import annotations

import json

import pytest
import yaml

from selectit.provenance import record_stages

# Every kind of stage once: the data stages, then one variant's fine-tuning and evaluation.
# (The pipeline-flow test in tests/e2e/test_dvc.py records all stages, comparison and report included.)
STAGE_COMMANDS = [
    ("ingest", ["python", "-m", "flows.ingest"]),
    ("validate", ["python", "-m", "flows.validate"]),
    ("score@tiny", ["python", "-m", "flows.score", "--rater", "tiny"]),
    ("aggregate", ["python", "-m", "flows.aggregate"]),
    ("select", ["python", "-m", "flows.select"]),
    ("audit", ["python", "-m", "flows.audit"]),  # switched off in the copy: it notes so
    ("finetune@selectit", ["python", "-m", "flows.finetune", "--variant", "selectit"]),
    ("evaluate@selectit", ["python", "-m", "flows.evaluate", "--variant", "selectit"]),
]


@pytest.mark.slow
def test_record_stages_after_running_each_stage_by_hand(tmp_path, project_copy, capfd):
    """The stage commands of dvc.yaml run outside DVC, then recorded: DVC sees
    exactly what `dvc repro` would have left, and can push it."""
    project = project_copy
    for _, cmd in STAGE_COMMANDS:
        project.run(*cmd)
    assert not (project.root / "dvc.lock").exists()

    stages = [name for name, _ in STAGE_COMMANDS]
    capfd.readouterr()
    hashes = record_stages(project.root, stages)
    assert capfd.readouterr().out == ""
    assert set(hashes) == {f"dvc.{s}" for s in stages}

    lock = yaml.safe_load((project.root / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(stages)
    assert json.loads(project.run("dvc", "status", "--json", *stages)) == {}
    assert "Data and pipelines are up to date" in project.run("dvc", "repro", *stages)

    # everything `dvc push` needs is in the cache: push to a local remote
    remote = tmp_path / "remote"
    project.run("dvc", "remote", "add", "-d", "store", str(remote))
    project.run("dvc", "push")
    selected = lock["stages"]["select"]["outs"][0]["md5"]
    assert (remote / "files" / "md5" / selected[:2] / selected[2:]).is_file()
