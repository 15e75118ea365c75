"""What made an output: the code's commit, its version, the DVC stage hashes.

- ``git_commit``: the commit of the checkout, marked ``-dirty`` when tracked
  files differ from it.
- ``project_modules`` and ``code_version``: which of the project's own source
  files a module runs, and a version string that changes exactly when one of
  them does. The files are found from the source text (import statements),
  not by importing, so asking is cheap and has no side effects.
- ``dvc_stage_hashes`` and ``record_stages``: what dvc.lock says each stage
  consumed and produced, and writing it there for stages that ran outside
  ``dvc repro`` (the Prefect pipeline flow).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from selectit import __version__

__all__ = [
    "PROJECT_PACKAGES",
    "PROJECT_ROOT",
    "code_version",
    "dvc_stage_hashes",
    "git_commit",
    "project_modules",
    "record_stages",
]

_log = logging.getLogger(__name__)
# Stages finishing in parallel threads (raters scored at the same time on Ray) record one at a
# time: DVC's repository lock and the working directory below are per process.
_RECORDING = threading.Lock()

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The top-level packages whose source is the project's own code (what dvc.yaml
# lists as stage dependencies); every other import is a third-party library.
PROJECT_PACKAGES = ("selectit", "flows", "tasks")


# --------------------------------------------------------------------------- git


def git_commit(project_root: Path) -> str | None:
    """``git rev-parse HEAD`` of the repository holding project_root, plus ``-dirty``
    when tracked files have uncommitted changes; None outside git (or without git)."""
    root = Path(project_root)
    if not root.is_dir():
        return None

    def git(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(
                # --no-optional-locks: `git status` would otherwise refresh and
                # rewrite the index, taking index.lock, and a git command that
                # someone runs in the same checkout at that moment would fail.
                ["git", "--no-optional-locks", *args],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None

    head = git("rev-parse", "--verify", "HEAD")
    if head is None or head.returncode != 0:
        return None
    sha = head.stdout.strip()
    if not sha:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    if status is not None and status.returncode == 0 and status.stdout.strip():
        sha += "-dirty"
    return sha


# --------------------------------------------------------------------------- dvc.lock

# The fields of a dvc.lock entry that identify its content (which one depends on
# the DVC version and the remote type).
_HASH_FIELDS = ("md5", "sha256", "etag", "checksum", "hash")


def _plain(value: Any) -> Any:
    """YAML data as JSON-safe values with string keys, so it can be hashed stably."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _lock_entries(entries: Any) -> list[dict[str, Any]]:
    rows = []
    for entry in entries or []:
        if isinstance(entry, Mapping):
            row = {"path": str(entry.get("path", ""))}
            row.update({k: _plain(entry[k]) for k in _HASH_FIELDS if k in entry})
        else:
            row = {"path": str(entry)}
        rows.append(row)
    # dvc.lock lists deps in dvc.yaml's order; reordering dvc.yaml changes nothing.
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def dvc_stage_hashes(dvc_lock_path: Path) -> dict[str, str]:
    """``{"dvc.<stage>": <12 hex>}`` from dvc.lock: a SHA-256 over each stage's
    dependency, parameter and output hashes, in a stable order. ``{}`` if the
    file is missing (a malformed file warns and gives ``{}`` too)."""
    import yaml

    path = Path(dvc_lock_path)
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        warnings.warn(f"{path}: cannot read dvc.lock: {exc}", stacklevel=2)
        return {}
    if not isinstance(data, Mapping):
        warnings.warn(f"{path}: expected a mapping at the top level", stacklevel=2)
        return {}
    # DVC 1 wrote the stages at the top level; DVC 2 and later under `stages`.
    stages = data.get("stages") if "schema" in data or "stages" in data else data
    if not isinstance(stages, Mapping):
        warnings.warn(f"{path}: 'stages' is not a mapping", stacklevel=2)
        return {}
    out: dict[str, str] = {}
    for name, stage in stages.items():
        if not isinstance(stage, Mapping):
            continue
        payload = {
            "deps": _lock_entries(stage.get("deps")),
            "params": _plain(stage.get("params") or {}),
            "outs": _lock_entries(stage.get("outs")),
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        out[f"dvc.{name}"] = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
    return out


# --------------------------------------------------------------------------- source files


def _module_file(root: Path, module: str) -> Path | None:
    """The file that importing `module` executes, as Python's path finder picks it:
    a package's ``__init__.py`` before a module's ``.py``. None for a namespace
    package, a name that is not a module (``from pkg.mod import function``) or
    a missing one."""
    base = root.joinpath(*module.split("."))
    init = base / "__init__.py"
    if init.is_file():
        return init
    source = base.with_name(base.name + ".py")
    return source if source.is_file() else None


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` / ``if typing.TYPE_CHECKING:``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of a block and the blocks nested in it (function and class
    bodies, branches, loops, try/except, with, match), except the body of
    ``if TYPE_CHECKING:``, which never runs. Import statements can only be
    statements, so expressions are not walked: that is most of a module's tree."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
            blocks = [stmt.orelse]
        else:
            blocks = [getattr(stmt, field, []) for field in ("body", "orelse", "finalbody")]
            blocks += [handler.body for handler in getattr(stmt, "handlers", [])]
            blocks += [case.body for case in getattr(stmt, "cases", [])]
        for block in blocks:
            yield from _statements(block)


def _absolute_base(node: ast.ImportFrom, package: str) -> str | None:
    """The absolute module name of ``from <base> import ...``; None when a relative
    import climbs above the top-level package (an ImportError at run time)."""
    if not node.level:
        return node.module
    parts = package.split(".") if package else []
    if node.level > len(parts):
        return None
    anchor = parts[: len(parts) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def _literal_import_calls(tree: ast.Module) -> Iterator[str]:
    """``importlib.import_module("pkg.mod")`` / ``__import__("pkg.mod")`` with a literal,
    absolute name: the one kind of dynamic import that the source text names."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        first = node.args[0]
        if (
            called in {"import_module", "__import__"}
            and isinstance(first, ast.Constant)
            and isinstance(first.value, str)
            and not first.value.startswith(".")
        ):
            yield first.value


def _imported_names(content: bytes, path: Path, package: str) -> set[str]:
    """Every module name a file may import: at the top, inside functions (the code
    imports heavy libraries lazily), in try/except, in any branch. For
    ``from pkg import name`` both ``pkg`` and ``pkg.name`` are given: name may
    be a submodule. `package` anchors relative imports."""
    tree = ast.parse(content, filename=str(path))
    names: set[str] = set()
    for stmt in _statements(tree.body):
        if isinstance(stmt, ast.Import):
            names.update(alias.name for alias in stmt.names)
        elif isinstance(stmt, ast.ImportFrom):
            base = _absolute_base(stmt, package)
            if base:
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in stmt.names if alias.name != "*")
    if b"import_module" in content or b"__import__" in content:
        names.update(_literal_import_calls(tree))
    return names


def _imports(path: Path, module: str) -> frozenset[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return _parsed_imports(path.read_bytes(), path, package)


# Keyed by the file's content (the package only anchors relative imports): a flow that
# imports many modules parses each shared file once per process, and an edited file anew.
@functools.lru_cache(maxsize=1024)
def _parsed_imports(content: bytes, path: Path, package: str) -> frozenset[str]:
    return frozenset(_imported_names(content, path, package))


def _main_module_name(root: Path) -> str:
    """The real name of ``__main__``, so that ``code_version(__name__)`` works in a
    module run as ``python -m flows.ingest`` (its spec names it) or as
    ``python flows/ingest.py`` (its file, relative to root, does)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return spec.name
    file = getattr(main, "__file__", None)
    if file:
        with contextlib.suppress(ValueError):
            relative = Path(file).resolve().relative_to(root).with_suffix("")
            return ".".join(relative.parts).removesuffix(".__init__")
    return "__main__"


def project_modules(
    module_name: str,
    *,
    root: Path = PROJECT_ROOT,
    packages: Sequence[str] = PROJECT_PACKAGES,
) -> list[Path]:
    """The project's own source files that importing (or ``python -m``) `module_name`
    executes, transitively; paths relative to `root`, sorted.

    Found statically from every ``import`` and ``from ... import`` statement,
    including those inside functions; limited to `packages` (third-party and
    standard-library imports are not followed). The ``__init__.py`` of every
    package on the way is included: importing ``a.b.c`` runs ``a/__init__.py``
    and ``a/b/__init__.py`` first. Not seen: imports whose module name is
    computed at run time, and data files the code reads (such as
    ``selectit/core/prompt_sets/*.yaml``). An import under
    ``if TYPE_CHECKING:`` is left out, since it never runs.

    ``"__main__"`` stands for the module that this process runs as a script
    (``python -m flows.ingest``), so a module can pass its ``__name__``.

    Raises ValueError for a module outside `packages` and ModuleNotFoundError
    for one that has no source file under `root`.
    """
    root = Path(root).resolve()
    allowed = frozenset(packages)
    if module_name == "__main__":
        module_name = _main_module_name(root)
    if module_name.split(".")[0] not in allowed:
        raise ValueError(f"{module_name}: not in the project's packages {sorted(allowed)}")
    if _module_file(root, module_name) is None:
        raise ModuleNotFoundError(f"{module_name}: no source file under {root}", name=module_name)

    files: dict[str, Path] = {}
    seen: set[str] = set()
    pending = [module_name]
    while pending:
        parts = pending.pop().split(".")
        if parts[0] not in allowed:
            continue
        for depth in range(1, len(parts) + 1):
            module = ".".join(parts[:depth])
            if module in seen:
                continue
            seen.add(module)
            path = _module_file(root, module)
            if path is None:
                continue
            files[module] = path
            pending.extend(_imports(path, module))
    return sorted((path.relative_to(root) for path in files.values()), key=Path.as_posix)


def project_imports(
    module_name: str,
    *,
    root: Path = PROJECT_ROOT,
    packages: Sequence[str] = PROJECT_PACKAGES,
) -> dict[str, int]:
    """The project modules that `module_name` imports itself (not transitively), each
    with the line of its first import. ``from pkg import name`` counts as ``pkg.name``
    where that is a module, else as ``pkg`` (a name its ``__init__.py`` defines)."""
    root = Path(root).resolve()
    path = _module_file(root, module_name)
    if path is None:
        raise ModuleNotFoundError(f"{module_name}: no source file under {root}", name=module_name)
    package = module_name if path.name == "__init__.py" else module_name.rpartition(".")[0]
    found: dict[str, int] = {}
    for stmt in _statements(ast.parse(path.read_bytes(), filename=str(path)).body):
        if isinstance(stmt, ast.Import):
            targets = [alias.name for alias in stmt.names]
        elif isinstance(stmt, ast.ImportFrom) and (base := _absolute_base(stmt, package)):
            targets = [
                f"{base}.{alias.name}" if _module_file(root, f"{base}.{alias.name}") else base for alias in stmt.names
            ]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in packages and target != module_name and _module_file(root, target):
                found.setdefault(target, stmt.lineno)
    return found


@functools.cache
def code_version(
    module_name: str,
    *,
    root: Path = PROJECT_ROOT,
    packages: tuple[str, ...] = PROJECT_PACKAGES,
) -> str:
    """``"<selectit.__version__>+<12 hex>"``: the package version plus a SHA-256 over
    the relative path and content of every file of ``project_modules(module_name)``.

    It changes when any file the module runs changes and not when another file
    does, so two runs with the same code_version ran the same project code
    (whatever the git commit says about unrelated files). Memoised per module:
    the code a process runs is the code it read when it started, and a flow
    module can call this at import time (a few ms for the whole project).
    ``code_version.cache_clear()`` forgets the memo (for tests).
    """
    root = Path(root).resolve()
    digest = hashlib.sha256()
    for relative in project_modules(module_name, root=root, packages=packages):
        name = relative.as_posix().encode("utf-8")
        content = (root / relative).read_bytes()
        # Length prefixes: no two different (path, content) lists hash the same bytes.
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(len(content).to_bytes(8, "big") + content)
    return f"{__version__}+{digest.hexdigest()[:12]}"


# --------------------------------------------------------------------------- DVC
# Every use of DVC's Python API is below, each internal with its reason.


def _import_dvc_repo():
    """``dvc.repo.Repo``, without the one side effect of ``import dvc`` that reaches
    beyond DVC: its logging setup (``dvc.logger.setup``) sets the ``asyncio`` and
    ``aiohttp`` loggers to CRITICAL for the whole process, which would hide the
    pipeline's own asyncio errors (Prefect runs on asyncio)."""
    others = {name: logging.getLogger(name).level for name in ("asyncio", "aiohttp")}
    from dvc.repo import Repo

    for name, level in others.items():
        logging.getLogger(name).setLevel(level)
    return Repo


@contextlib.contextmanager
def _quiet_dvc() -> Iterator[None]:
    """No DVC chatter on stdout, no progress bars and no DVC deprecation warnings
    while recording.

    ``import dvc`` gives the ``dvc``, ``dvc_data`` and ``dvc_objects`` loggers
    handlers that print INFO lines ("Updating lock file 'dvc.lock'") to stdout;
    they are raised to WARNING here, so warnings and errors still reach stderr.
    DVC's progress bars switch themselves off when their module's logger is
    above ERROR, so those two loggers go to CRITICAL.
    """
    wanted = {
        "dvc": logging.WARNING,
        "dvc_data": logging.WARNING,
        "dvc_objects": logging.WARNING,
        "dvc.progress": logging.CRITICAL,
        "dvc_data.callbacks": logging.CRITICAL,
    }
    saved = {name: logging.getLogger(name).level for name in wanted}
    for name, level in wanted.items():
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < level:
            logger.setLevel(level)
    try:
        with warnings.catch_warnings():
            # DVC's own use of deprecated APIs of its dependencies (pygtrie's
            # `_NoneStep.value`): nothing the caller can act on.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"dvc(_\w+)?(\.|$)")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _inside_dvc_stage_of(root: Path) -> str | None:
    """The stage that `dvc repro` of the project at root is running in this process
    (DVC sets DVC_ROOT and DVC_STAGE for every stage command), else None."""
    stage, dvc_root = os.environ.get("DVC_STAGE"), os.environ.get("DVC_ROOT")
    if not stage or not dvc_root:
        return None
    try:
        same = Path(dvc_root).resolve() == root
    except OSError:
        return None
    return stage if same else None


def record_stages(project_root: Path, stages: Sequence[str]) -> dict[str, str]:
    """Record stages that already ran, as `dvc repro` would have recorded them; return
    their ``dvc_stage_hashes`` (``{"dvc.<stage>": <12 hex>}``).

    For each stage name of dvc.yaml (``"ingest"``, ``"score@<rater>"``), in the
    given order, this does what ``dvc commit --force <stage>`` does, through
    DVC's Python API (``Repo.commit(stage, force=True)``): hash the stage's
    dependencies, parameters and outputs as they are in the workspace now,
    write its dvc.lock entry, save its cached outputs into the DVC cache (and
    the run cache, as `dvc repro` does) and git-ignore them. Afterwards
    ``dvc status`` reports the stages up to date, ``dvc repro`` skips them and
    ``dvc push`` can send their data. Call it right after a stage ran: a file
    changed in between is recorded as it is now.

    Returns ``{}`` and logs one INFO line, recording nothing, where there is no
    DVC project at project_root (no dvc.yaml or no .dvc/) and where this process
    is itself a stage command of ``dvc repro`` on that project. In that case
    DVC records its own stages; and although DVC releases its repository lock
    while a stage command runs (so a commit would be let through), it holds
    read/write locks on the running stage's dependencies and outputs, and
    committing a stage whose outputs those are fails after about a second with
    ``dvc.lock.LockError: '<path>' is busy``.

    Otherwise DVC's errors propagate: an unknown stage name
    (``dvc.stage.exceptions.StageNotFound``), a missing dependency or output, a
    ``LockError`` when another DVC process holds the repository for more than
    about 3 s. Stages recorded before the failing one stay recorded.

    The process's working directory is the project root while DVC works
    (DVC's run cache resolves "dvc.yaml" against it, and fails with
    ``StagePathOutsideError`` when it is outside the repository); it is
    process-wide, so no other thread should depend on it meanwhile.
    """
    root = Path(project_root).resolve()
    names = list(stages)
    if not (root / "dvc.yaml").is_file() or not (root / ".dvc").is_dir():
        _log.info(
            "%s is not a DVC project (no dvc.yaml or no .dvc/): not recorded in DVC: %s",
            root,
            ", ".join(names) or "no stages",
        )
        return {}
    running = _inside_dvc_stage_of(root)
    if running is not None:
        _log.info(
            "running as stage %r of `dvc repro`, which records stages itself: not recorded: %s",
            running,
            ", ".join(names) or "no stages",
        )
        return {}
    if not names:
        return {}

    # Not DVC's documented Python API (dvc.api only reads): Repo.commit is what `dvc commit`
    # runs. In this process it records the stages without a `dvc` subprocess per stage, and
    # DVC's errors arrive as exceptions, not as exit statuses and text.
    Repo = _import_dvc_repo()
    with _RECORDING, _quiet_dvc(), contextlib.chdir(root), Repo(os.fspath(root)) as repo:
        for name in names:
            repo.commit(name, force=True)
    hashes = dvc_stage_hashes(root / "dvc.lock")
    recorded = {key: hashes[key] for key in (f"dvc.{name}" for name in names) if key in hashes}
    _log.debug("recorded in %s: %s", root / "dvc.lock", recorded)
    return recorded
