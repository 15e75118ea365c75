"""Provenance: the git commit, dvc.lock hashes, the project files a module runs and
their code version, and recording finished stages in DVC as `dvc repro` would."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

import selectit
from selectit.provenance import code_version, dvc_stage_hashes, git_commit, project_modules, record_stages

# The venv's `dvc` and `python` first on PATH, as `make` runs them.
VENV_BIN = str(Path(sys.executable).parent)


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


# --------------------------------------------------------------------------- git commit


def test_git_commit(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_commit(outside) is None
    assert git_commit(tmp_path / "missing") is None

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


# --------------------------------------------------------------------------- dvc.lock hashes

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


def test_dvc_stage_hashes_of_a_malformed_lock_warn(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text("stages: [unclosed\n")
    with pytest.warns(UserWarning, match="cannot read dvc.lock"):
        assert dvc_stage_hashes(lock) == {}
    lock.write_text("- a list\n")
    with pytest.warns(UserWarning, match="mapping at the top level"):
        assert dvc_stage_hashes(lock) == {}


# --------------------------------------------------------------------------- project modules

# A fake project: packages `app` and `lib` are its own, `vendor` stands for a
# third-party library that happens to sit next to them.
FAKE_TREE = {
    "app/__init__.py": "",
    "app/main.py": """\
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy  # third-party: not followed
import vendor.tool
from lib.core import helper  # a function of lib/core.py, not a module
from . import sibling

if TYPE_CHECKING:  # never runs
    from lib import typing_only


def run():
    from lib.heavy import compute  # lazy, as the project imports heavy libraries
    import lib.deep.leaf

    return compute(helper())
""",
    "app/sibling.py": "from .util import VALUE\n",
    "app/util.py": "VALUE = 1\n",
    "app/unused.py": "import lib.core\n",
    "lib/__init__.py": "",
    "lib/core.py": "def helper():\n    return 1\n",
    "lib/heavy.py": """\
import importlib


def compute(x):
    return importlib.import_module("lib.plugin").twice(x)
""",
    "lib/plugin.py": "def twice(x):\n    return 2 * x\n",
    "lib/typing_only.py": "",
    "lib/deep/__init__.py": "",
    "lib/deep/leaf.py": "from ..core import helper\nfrom .. import core as again\n",
    "app/cli.py": """\
import sys
from pathlib import Path

from selectit.provenance import code_version

from app import util

print(code_version(__name__, root=Path(sys.argv[1]), packages=("app", "lib")))
""",
    "vendor/__init__.py": "",
    "vendor/tool.py": "import lib.core\n",
}
PACKAGES = ("app", "lib")


@pytest.fixture
def fake_project(tmp_path) -> Path:
    root = tmp_path / "fake"
    for name, text in FAKE_TREE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    code_version.cache_clear()
    yield root
    code_version.cache_clear()


def test_project_modules_follows_lazy_relative_and_literal_imports(fake_project):
    found = project_modules("app.main", root=fake_project, packages=PACKAGES)
    assert [p.as_posix() for p in found] == [
        "app/__init__.py",
        "app/main.py",
        "app/sibling.py",  # from . import sibling
        "app/util.py",  # from .util import VALUE (in sibling)
        "lib/__init__.py",
        "lib/core.py",
        "lib/deep/__init__.py",  # executed by `import lib.deep.leaf`
        "lib/deep/leaf.py",  # inside a function
        "lib/heavy.py",  # inside a function
        "lib/plugin.py",  # importlib.import_module("lib.plugin")
    ]
    assert all(not p.is_absolute() for p in found)


def test_project_modules_of_a_leaf_and_bad_names(fake_project):
    assert [p.as_posix() for p in project_modules("lib.deep.leaf", root=fake_project, packages=PACKAGES)] == [
        "lib/__init__.py",
        "lib/core.py",
        "lib/deep/__init__.py",
        "lib/deep/leaf.py",
    ]
    # a package: its __init__.py
    assert project_modules("lib", root=fake_project, packages=PACKAGES) == [Path("lib/__init__.py")]
    with pytest.raises(ModuleNotFoundError, match="app.missing"):
        project_modules("app.missing", root=fake_project, packages=PACKAGES)
    with pytest.raises(ValueError, match="vendor.tool"):
        project_modules("vendor.tool", root=fake_project, packages=PACKAGES)


def test_project_modules_of_the_real_flows():
    ingest = {p.as_posix() for p in project_modules("flows.ingest")}
    assert {"flows/__init__.py", "flows/ingest.py", "selectit/__init__.py", "selectit/provenance.py"} <= ingest
    assert "flows/score.py" not in ingest
    assert not any(p.startswith("tests/") for p in ingest)
    pipeline = {p.as_posix() for p in project_modules("flows.pipeline")}
    assert ingest < pipeline


def test_code_version_follows_the_files_the_module_runs(fake_project):
    version = code_version("app.main", root=fake_project, packages=PACKAGES)
    assert re.fullmatch(re.escape(selectit.__version__) + r"\+[0-9a-f]{12}", version)

    # memoised: the code a process runs is what it read first
    (fake_project / "lib/deep/leaf.py").write_text("from ..core import helper\n# changed\n")
    assert code_version("app.main", root=fake_project, packages=PACKAGES) == version

    code_version.cache_clear()
    changed = code_version("app.main", root=fake_project, packages=PACKAGES)
    assert changed != version  # a file imported inside a function, two levels down

    code_version.cache_clear()
    (fake_project / "app/unused.py").write_text("import lib.core\nimport lib.heavy\n")
    (fake_project / "lib/typing_only.py").write_text("X = 1\n")
    (fake_project / "vendor/tool.py").write_text("# changed\n")
    assert code_version("app.main", root=fake_project, packages=PACKAGES) == changed

    # the same content under another path is another version
    code_version.cache_clear()
    (fake_project / "app/util.py").rename(fake_project / "app/helpers.py")
    (fake_project / "app/sibling.py").write_text("from .helpers import VALUE\n")
    renamed = code_version("app.main", root=fake_project, packages=PACKAGES)
    (fake_project / "app/helpers.py").rename(fake_project / "app/util.py")
    (fake_project / "app/sibling.py").write_text("from .util import VALUE\n")
    code_version.cache_clear()
    assert code_version("app.main", root=fake_project, packages=PACKAGES) == changed != renamed


def test_code_version_of_a_module_run_as_main(fake_project):
    """`python -m app.cli` calls code_version(__name__) with __name__ == "__main__"."""
    expected = code_version("app.cli", root=fake_project, packages=PACKAGES)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake_project), str(ROOT)])}
    for command in (["-m", "app.cli"], [str(fake_project / "app" / "cli.py")]):
        done = subprocess.run(
            [sys.executable, *command, str(fake_project)],
            cwd=fake_project,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.strip() == expected


def test_code_version_of_the_real_flows_differ():
    versions = {m: code_version(m) for m in ("flows.ingest", "flows.validate", "flows.select")}
    assert len(set(versions.values())) == 3
    assert code_version("flows.ingest") is versions["flows.ingest"]


# --------------------------------------------------------------------------- record_stages, a toy project

TOY_DVC_YAML = """\
stages:
  make:
    cmd: python -c "import shutil; shutil.copytree('input', 'made')"
    deps:
      - input
    outs:
      - made
  each:
    foreach: [a, b]
    do:
      cmd: python -c "import pathlib; pathlib.Path('each/${item}').mkdir(parents=True, exist_ok=True)"
      deps:
        - made
      outs:
        - each/${item}
"""


def _dvc(project: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    done = subprocess.run(["dvc", *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _cached(project: Path, md5: str) -> bool:
    path = project / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    return path.is_file()


@pytest.fixture
def toy_project(tmp_path) -> Path:
    """A DVC project whose stages ran by hand: outputs there, nothing in dvc.lock."""
    project = tmp_path / "toy"
    project.mkdir()
    _git(project, "init", "-q")
    from dvc.repo import Repo

    Repo.init(str(project)).close()  # `dvc init`, without starting the CLI
    (project / "dvc.yaml").write_text(TOY_DVC_YAML)
    (project / "input").mkdir()
    (project / "input" / "rows.txt").write_text("one\ntwo\n")
    shutil.copytree(project / "input", project / "made")
    for item in ("a", "b"):
        (project / "each" / item).mkdir(parents=True)
        (project / "each" / item / "out.txt").write_text(f"{item}\n")
    return project


def _status(project: Path) -> dict:
    """`dvc status` in this process (the CLI takes seconds to start)."""
    from dvc.repo import Repo

    with contextlib.chdir(project), Repo(str(project)) as repo:
        return repo.status()


def test_record_stages_writes_dvc_lock_and_the_cache(toy_project, capfd, monkeypatch):
    monkeypatch.chdir(ROOT)  # not the toy project: DVC's run cache would resolve paths against it
    capfd.readouterr()
    stages = ["make", "each@a", "each@b"]
    hashes = record_stages(toy_project, stages)
    out, _ = capfd.readouterr()
    assert out == ""  # no "Updating lock file" and no progress bars on stdout
    assert Path.cwd() == ROOT

    assert hashes == dvc_stage_hashes(toy_project / "dvc.lock")
    assert set(hashes) == {f"dvc.{s}" for s in stages}
    lock = yaml.safe_load((toy_project / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(stages)
    made = lock["stages"]["make"]["outs"][0]
    assert made["path"] == "made" and made["md5"].endswith(".dir")
    assert _cached(toy_project, made["md5"])  # the directory listing: what `dvc push` sends first
    assert _cached(toy_project, lock["stages"]["each@a"]["outs"][0]["md5"])
    assert _status(toy_project) == {}

    # an output changed by hand: recorded again, and clean again
    (toy_project / "each" / "b" / "out.txt").write_text("b, changed\n")
    assert set(_status(toy_project)) == {"each@b"}
    again = record_stages(toy_project, ["each@b"])
    assert set(again) == {"dvc.each@b"} and again["dvc.each@b"] != hashes["dvc.each@b"]
    assert json.loads(_dvc(toy_project, "status", "--json")) == {}  # and as another process sees it


def test_record_stages_without_a_dvc_project(tmp_path, caplog):
    (tmp_path / "dvc.yaml").write_text(TOY_DVC_YAML)  # a dvc.yaml, but no .dvc/
    with caplog.at_level(logging.INFO, logger="selectit.provenance"):
        assert record_stages(tmp_path, ["make"]) == {}
    lines = [r for r in caplog.records if r.name == "selectit.provenance"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert "not a DVC project" in lines[0].getMessage()
    assert not (tmp_path / "dvc.lock").exists()


def test_record_stages_inside_dvc_repro_of_the_project_records_nothing(toy_project, monkeypatch, caplog):
    monkeypatch.setenv("DVC_ROOT", str(toy_project))
    monkeypatch.setenv("DVC_STAGE", "each@a")
    with caplog.at_level(logging.INFO, logger="selectit.provenance"):
        assert record_stages(toy_project, ["make"]) == {}
    assert "dvc repro" in caplog.text
    assert not (toy_project / "dvc.lock").exists()

    # a stage command of another project's `dvc repro` may record this one
    monkeypatch.setenv("DVC_ROOT", str(toy_project.parent))
    assert set(record_stages(toy_project, ["make"])) == {"dvc.make"}


def test_record_stages_unknown_stage_is_dvc_error(toy_project):
    from dvc.exceptions import DvcException

    with pytest.raises(DvcException):
        record_stages(toy_project, ["nope"])
