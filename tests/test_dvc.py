"""`dvc repro` on a copy of the project: a finished run is a no-op, and a change to
`select` params re-runs only `select`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, TINY_ROWS, pipeline_params

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_dvc_repro_reruns_only_what_changed(tmp_path, tiny_model):
    project = tmp_path / "project"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file() and not name.startswith("tests/"):
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, project / name)
    source = tmp_path / "source.json"
    source.write_text(json.dumps(TINY_ROWS))
    pipeline_params(project, source, [str(tiny_model)])
    params = yaml.safe_load((project / "params.yaml").read_text())
    # DVC's foreach names stages and folders by the rater; a folder name keeps paths short.
    (project / "tiny").symlink_to(tiny_model, target_is_directory=True)
    params["score"]["raters"] = ["tiny"]
    (project / "params.yaml").write_text(yaml.safe_dump(params))

    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("PREFECT_API_URL", None)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    _run(["git", "init", "-q"], project, env)
    _run([*git, "add", "-A"], project, env)
    _run([*git, "commit", "-qm", "copy"], project, env)

    first = _run(["dvc", "repro"], project, env)
    for stage in ("ingest", "validate", "score@tiny", "aggregate", "select"):
        assert f"Running stage '{stage}'" in first
    assert json.loads((project / "data/selected/selective_alpaca.json").read_text())

    assert "Data and pipelines are up to date" in _run(["dvc", "repro"], project, env)

    params["select"]["ratio"] = 0.9
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    again = _run(["dvc", "repro"], project, env)
    assert "Running stage 'select'" in again
    for stage in ("ingest", "validate", "score@tiny", "aggregate"):
        assert f"Running stage '{stage}'" not in again
    assert len(json.loads((project / "data/selected/selective_alpaca.json").read_text())) == 5  # 90% of 6
