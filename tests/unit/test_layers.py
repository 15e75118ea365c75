"""The project's modules stand in layers, and imports only go down.

A module may import from its own layer or from a lower one, never from a
higher one, and no modules import each other in a circle, function-local imports
included (an import inside a function hides a tie from the reader, not from
this test). A function-local import of a project module is allowed only to
keep a heavy dependency off the import path of light commands, and says which
in a comment on its line or the line above.

The layers, bottom to top (docs/how-it-works/architecture.md draws them):"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers import ROOT

from selectit.provenance import PROJECT_PACKAGES, project_imports

LAYERS: list[tuple[str, ...]] = [
    ("selectit.core", "selectit.__init__"),  # the data model, record files, paths, errors, the catalog of names
    ("selectit.config",),  # params.yaml, typed and checked
    ("selectit.summaries",),  # what each stage wrote, typed
    (
        "selectit.scoring",
        "selectit.ingest",
        "selectit.checks",
        "selectit.selection",
        "selectit.hygiene",
        "selectit.plots",
        # judged pairs, the file, and which of them the evaluation keeps from any fitter: no model,
        # so that a selector fitted on judged pairs (select stage) reads the same split
        "selectit.audit.pairs",
        "selectit.evaluation.preference_split",
    ),
    ("selectit.rating", "selectit.finetune", "selectit.evaluation"),  # models
    # studies and records of runs; params.yaml's score and ray keys as rating's plain values
    ("selectit.audit", "selectit.report", "selectit.tracking", "selectit.provenance", "selectit.rating_params"),
    ("selectit.context", "selectit.stages"),  # one run: settings, data layout, MLflow parent run, the stage registry
    ("selectit.cli", "selectit.__main__"),  # the command line
    ("tasks",),  # Prefect tasks: the I/O around one library call
    ("flows",),  # Prefect flows: one per stage, and the pipeline
]
__doc__ += "\n" + "\n".join(f"  {i}. {', '.join(layer)}" for i, layer in enumerate(LAYERS))


def layer_of(module: str) -> int:
    """The layer of the longest prefix that names the module or a package above it
    (a package's own ``__init__`` goes by `<package>.__init__`)."""
    if module in PROJECT_PACKAGES:
        module += ".__init__"
    best, depth = None, -1
    for index, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = index, prefix.count(".")
    if best is None:
        raise KeyError(f"{module}: in no layer of tests/unit/test_layers.py LAYERS; add it where it belongs")
    return best


def project_module_names(root: Path = ROOT) -> list[str]:
    names = []
    for package in PROJECT_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(root).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = project_module_names()
GRAPH = {module: project_imports(module) for module in MODULES}


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    found = []
    for module, imports in sorted(graph.items()):
        for target, line in sorted(imports.items()):
            here, there = layer_of(module), layer_of(target)
            if there > here:
                found.append(f"{module} (layer {here}) line {line} imports {target} (layer {there})")
    return found


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def unexplained_local_imports(path: Path) -> list[str]:
    """Project imports inside a function with no comment on their line or the line above."""
    lines = path.read_text(encoding="utf-8").splitlines()
    tree = ast.parse("\n".join(lines), filename=str(path))
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            if not any(name.split(".")[0] in PROJECT_PACKAGES for name in names):
                continue
            said = "#" in lines[node.lineno - 1] or lines[node.lineno - 2].strip().startswith("#")
            if not said:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)  # raises with the module's name


def test_no_import_runs_up_a_layer():
    found = upward_imports(GRAPH)
    assert not found, "imports that run up the layers:\n" + "\n".join(found)


def test_no_import_cycles():
    cycles = import_cycles(GRAPH)
    assert not cycles, "modules that import each other in a circle:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("package", PROJECT_PACKAGES)
def test_function_local_project_imports_say_why(package):
    found = [line for path in sorted((ROOT / package).rglob("*.py")) for line in unexplained_local_imports(path)]
    assert not found, (
        "project imports inside functions hide ties between modules; import at the top, or say on the line "
        "(or above) which heavy dependency the local import keeps off the import path:\n" + "\n".join(found)
    )


def test_the_checks_find_a_cycle_and_an_upward_import():
    graph = {
        "selectit.core.records": {"selectit.config": 3},  # core reaching up to the settings
        "selectit.config": {"selectit.core.records": 1},
        "selectit.rating.engine": {"selectit.rating.placement": 5},
        "selectit.rating.placement": {"selectit.rating.engine": 7},
        "flows.score": {"selectit.rating.engine": 2},
    }
    assert import_cycles(graph) == [
        ["selectit.config", "selectit.core.records"],
        ["selectit.rating.engine", "selectit.rating.placement"],
    ]
    assert upward_imports(graph) == ["selectit.core.records (layer 0) line 3 imports selectit.config (layer 1)"]


def test_an_unexplained_local_import_is_found(tmp_path, monkeypatch):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def a():\n"
        "    from selectit.rating import engine\n"
        "\n"
        "def b():\n"
        "    # torch: keeps the command line fast\n"
        "    from selectit.rating import models\n"
        "\n"
        "def c():\n"
        "    import json\n"
    )
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert unexplained_local_imports(probe) == ["probe.py:2: from selectit.rating import engine"]
