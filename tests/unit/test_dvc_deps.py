"""dvc.yaml's deps match the code each stage runs.

A project file that a stage loads but does not list lets `dvc repro` skip a
stage whose code changed (stale outputs); a listed project .py file that the
stage does not load re-runs it for nothing. The files a stage loads are
`project_modules` of the flow module its `cmd` runs (`python -m flows.X`)."""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from selectit.provenance import PROJECT_PACKAGES, project_modules

_INTERPOLATION = re.compile(r"\$\{\s*([^}]+?)\s*\}")


@dataclass(frozen=True)
class Stage:
    name: str  # as DVC names it: "ingest", "score@gemma3-270m"
    cmd: str
    deps: tuple[str, ...]
    deps_key: str  # where its deps list is in dvc.yaml, for the message
    indent: int  # of that list's items


def _lookup(dotted: str, context: dict):
    value = context
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise KeyError(f"dvc.yaml: ${{{dotted}}} is not in params.yaml (nor a foreach variable)")
        value = value[key]
    return value


def _interpolate(value, context: dict):
    """`${a.b}` as DVC substitutes it: a whole-string reference keeps the value's type."""
    if isinstance(value, str):
        whole = _INTERPOLATION.fullmatch(value)
        if whole:
            return _lookup(whole.group(1), context)
        return _INTERPOLATION.sub(lambda m: str(_lookup(m.group(1), context)), value)
    if isinstance(value, list):
        return [_interpolate(v, context) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, context) for k, v in value.items()}
    return value


def _dep_path(dep) -> str:
    """A deps entry as a normalised relative path (an entry may be a one-key mapping)."""
    path = next(iter(dep)) if isinstance(dep, dict) else str(dep)
    return posixpath.normpath(path)


def dvc_stages(root: Path = ROOT) -> list[Stage]:
    """The stages of dvc.yaml with foreach expanded and ${...} filled from params.yaml."""
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    params = yaml.safe_load((root / "params.yaml").read_text())
    for entry in pipeline.get("vars") or []:
        if isinstance(entry, dict):  # inline values (vars files are not read: this project has none)
            params = {**params, **entry}
    stages = []
    for name, spec in pipeline["stages"].items():
        if "foreach" in spec:
            items = _interpolate(spec["foreach"], params)
            pairs = items.items() if isinstance(items, dict) else ((item, item) for item in items)
            for key, item in pairs:
                context = {**params, "item": item, "key": key}
                body = _interpolate(spec["do"], context)
                stages.append(
                    Stage(
                        f"{name}@{key}",
                        body["cmd"],
                        tuple(_dep_path(d) for d in body.get("deps", [])),
                        f"stages.{name}.do.deps",
                        8,
                    )
                )
        else:
            body = _interpolate(spec, params)
            stages.append(
                Stage(name, body["cmd"], tuple(_dep_path(d) for d in body.get("deps", [])), f"stages.{name}.deps", 6)
            )
    return stages


def flow_module(cmd: str) -> str:
    """`python -m flows.score --rater x` -> "flows.score"."""
    words = shlex.split(cmd)
    if len(words) < 3 or Path(words[0]).name not in {"python", "python3"} or words[1] != "-m":
        raise ValueError(f"not a `python -m <module>` command: {cmd!r}")
    return words[2]


def _covered(path: str, deps: tuple[str, ...]) -> bool:
    return any(path == dep or path.startswith(dep + "/") for dep in deps)


def _is_project_code(dep: str) -> bool:
    return dep.split("/")[0] in PROJECT_PACKAGES


def stale_deps(deps: tuple[str, ...], loaded: set[str], root: Path = ROOT) -> list[str]:
    """Deps naming project code the stage does not load: a .py file (also one that
    no longer exists), or a folder holding such files (package data folders with
    no Python, like prompt_sets, are not code)."""
    stale = []
    for dep in deps:
        if not _is_project_code(dep):
            continue
        if dep.endswith(".py"):
            if dep not in loaded:
                stale.append(dep)
        elif (root / dep).is_dir():
            unused = sorted(
                p.relative_to(root).as_posix() for p in (root / dep).rglob("*.py") if "__pycache__" not in p.parts
            )
            unused = [p for p in unused if p not in loaded]
            if unused:
                stale.append(f"{dep} (holds {', '.join(unused)}, which the stage does not load)")
    return stale


STAGES = dvc_stages()


def test_every_stage_runs_a_flow_module():
    assert STAGES, "dvc.yaml has no stages"
    for stage in STAGES:
        assert flow_module(stage.cmd).split(".")[0] == "flows", f"{stage.name}: {stage.cmd}"


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_deps_are_the_code_the_stage_loads(stage: Stage):
    module = flow_module(stage.cmd)
    loaded = {p.as_posix() for p in project_modules(module)}
    missing = sorted(p for p in loaded if not _covered(p, stage.deps))
    stale = stale_deps(stage.deps, loaded)
    problems = []
    if missing:
        pad = " " * stage.indent
        problems.append(
            f"`{stage.cmd}` loads files that dvc.yaml {stage.deps_key} does not list "
            f"(a change to them would not re-run {stage.name}); add:\n" + "\n".join(f"{pad}- {p}" for p in missing)
        )
    if stale:
        problems.append(
            f"dvc.yaml {stage.deps_key} lists project code that `{stage.cmd}` does not load "
            f"(a change to it re-runs {stage.name} for nothing); remove:\n" + "\n".join(f"  {d}" for d in stale)
        )
    assert not problems, "\n\n".join(problems)


def test_the_check_sees_a_missing_and_a_stale_dep(tmp_path):
    """The checker on a dvc.yaml of our own: a foreach stage, a params reference,
    a dep the stage lacks, and one it does not need."""
    (tmp_path / "params.yaml").write_text("score:\n  raters: [a, b]\nsource: in.json\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  score:\n"
        "    foreach: ${score.raters}\n"
        "    do:\n"
        "      cmd: python -m flows.score --rater ${item}\n"
        "      deps:\n"
        "        - ${source}\n"
        "        - data/x/${item}\n"
        "        - flows/score.py\n"
        "        - flows/unused.py\n"
        "        - selectit/rating\n"
    )
    for stage in dvc_stages(tmp_path):
        assert stage.name in {"score@a", "score@b"}
        assert flow_module(stage.cmd) == "flows.score"
        assert stage.deps[:2] == ("in.json", f"data/x/{stage.name[-1]}")
        loaded = {"flows/score.py", "flows/__init__.py"}
        assert not _covered("flows/__init__.py", stage.deps)
        assert _covered("selectit/rating/rate.py", stage.deps)
        (tmp_path / "selectit" / "rating").mkdir(parents=True, exist_ok=True)
        (tmp_path / "selectit" / "rating" / "engine.py").write_text("")
        assert stale_deps(stage.deps, loaded, tmp_path) == [
            "flows/unused.py",
            "selectit/rating (holds selectit/rating/engine.py, which the stage does not load)",
        ]
