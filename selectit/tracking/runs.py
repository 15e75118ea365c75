"""MLflow tracking for the pipeline: one parent run per pipeline run, one nested run per stage.

A pipeline run is either one process (the Prefect flow wraps every stage in
``PipelineTracker.pipeline()``) or one process per stage (DVC runs
``python -m flows.<stage>``). In both cases the parent run's id is written to a
small file (``run_id_file``, e.g. ``data/.mlflow_run_id``), so a stage started in
its own process finds the parent of the current pipeline run and nests under it.

Everything goes through an ``MlflowClient`` bound to the tracker's tracking URI:
no global tracking URI, no fluent "active run" stack, so two trackers with
different stores in one process never mix their runs. MLflow is imported lazily,
and its usage telemetry is switched off (``MLFLOW_DISABLE_TELEMETRY``, unless the
environment already sets it) before the first import, so nothing here tries to
reach the network for a local store.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import logging
import math
import os
import posixpath
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "PipelineTracker",
    "StageLogger",
    "default_tracking_uri",
    "dvc_stage_hashes",
    "flatten",
    "git_commit",
]

_log = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation); used if that module cannot be read.
_FALLBACK_PARAM_LIMIT = 6000
_FALLBACK_TAG_LIMIT = 8000
_KEY_LIMIT = 250
_BATCH = 100  # params/tags per log_batch call (MLflow's MAX_PARAMS_TAGS_PER_BATCH)

# Parent runs that a pipeline() context of this process holds open. A stage that
# finds such a parent through the run-id file (a second tracker instance in the
# same process) must not touch the parent's status.
_ACTIVE_PARENTS: set[str] = set()

_INVALID_KEY_CHARS = re.compile(r"[^/\w.\- :]")


# --------------------------------------------------------------------------- mlflow


def _telemetry_off() -> None:
    """Opt out of MLflow's usage telemetry unless the environment decided otherwise.

    MLflow reads this when it is first imported; it would otherwise fetch a
    config from, and send usage records to, a remote server.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _mlflow():
    """Import mlflow with telemetry off, also when something imported it before us."""
    _telemetry_off()
    import mlflow

    if os.environ.get("MLFLOW_DISABLE_TELEMETRY", "").strip().lower() in {"true", "1"}:
        try:
            from mlflow.telemetry.client import get_telemetry_client, set_telemetry_client

            if get_telemetry_client() is not None:
                set_telemetry_client()  # re-reads the switch: drops the client
        except Exception:  # pragma: no cover - telemetry internals moved
            pass
    return mlflow


def _param_limit() -> int:
    _mlflow()
    try:
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
    except Exception:  # pragma: no cover - only if mlflow moves the constant
        return _FALLBACK_PARAM_LIMIT
    return int(MAX_PARAM_VAL_LENGTH)


def _tag_limit() -> int:
    _mlflow()
    try:
        from mlflow.utils.validation import MAX_TAG_VAL_LENGTH
    except Exception:  # pragma: no cover
        return _FALLBACK_TAG_LIMIT
    return int(MAX_TAG_VAL_LENGTH)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence MLflow's informational chatter (table creation, source guessing).

    Only INFO lines and known harmless warnings are dropped; errors still surface.
    """
    names = ("mlflow.store.db.utils", "alembic", "alembic.runtime.migration")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        if lg.getEffectiveLevel() < logging.WARNING:
            lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"The specified dataset source can be interpreted"
            )
            warnings.filterwarnings("ignore", message=r".*[Gg]it.*executable")
            warnings.filterwarnings("ignore", message=r"Hint: Inferred schema contains integer")
            # deprecation notices raised inside mlflow's own code (SQLAlchemy, pandas)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mlflow\.")
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"mlflow\.")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _safe_key(key: Any) -> str:
    """A param/metric/tag key MLflow accepts: bad characters become "_"."""
    text = _INVALID_KEY_CHARS.sub("_", str(key)).strip()
    norm = posixpath.normpath(text) if text else ""
    if norm != text or norm.startswith("/") or norm.startswith("..") or norm == ".":
        text = text.replace("/", "_")
        if text in {".", ".."}:
            text = "_"
    return text[:_KEY_LIMIT] or "_"


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 3] + "..."


def _now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------- helpers


def default_tracking_uri(project_root: Path) -> str:
    """The project's local tracking store: ``sqlite:///<project_root>/mlflow.db``.

    MLflow 3 keeps the plain file store (``./mlruns``) in maintenance mode and
    refuses to open it unless ``MLFLOW_ALLOW_FILE_STORE=true``; an SQLite file
    is its recommended local backend. Artifacts go next to it, in
    ``<project_root>/mlruns/`` (both are git-ignored). ``MLFLOW_TRACKING_URI``,
    when set, wins.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return f"sqlite:///{(Path(project_root).resolve() / 'mlflow.db').as_posix()}"


def _artifact_root_for(tracking_uri: str) -> str | None:
    """``<db folder>/mlruns`` for a file-backed SQLite store, else the store's default."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    db = tracking_uri[len(prefix) :].split("?", 1)[0]
    if not db or db == ":memory:":
        return None
    return (Path(db).resolve().parent / "mlruns").as_uri()


def _scalar_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bytes, int, float, bool, Path))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return [_jsonable(v) for v in sorted(value, key=repr)]
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if _is_scalar(value) and not isinstance(value, (Path, bytes)):
        return value
    return str(value)


def _param_text(value: Any) -> str:
    if hasattr(value, "tolist") and not _is_scalar(value):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, (set, frozenset)):
        value = sorted(value, key=repr)
    if isinstance(value, (list, tuple)):
        if all(_is_scalar(v) for v in value):
            return ",".join(_scalar_text(v) for v in value) if value else "[]"
        return json.dumps(_jsonable(value), sort_keys=True, ensure_ascii=False)
    return _scalar_text(value)


def flatten(params: Mapping, prefix: str = "") -> dict[str, str]:
    """Nested settings as flat MLflow params.

    ``{"score": {"k": 5, "raters": ["a", "b"]}}`` becomes
    ``{"score.k": "5", "score.raters": "a,b"}``. ``None`` is ``"null"``, booleans
    are ``"true"``/``"false"``, a list of non-scalars is JSON, an empty nested
    mapping is ``"{}"``. Values longer than MLflow's param limit are cut to it.
    """
    limit = _param_limit()
    out: dict[str, str] = {}

    def walk(mapping: Mapping, head: str) -> None:
        for key, value in mapping.items():
            name = f"{head}.{key}" if head else str(key)
            if isinstance(value, Mapping):
                if value:
                    walk(value, name)
                else:
                    out[name] = "{}"
            else:
                out[name] = _truncate(_param_text(value), limit)

    walk(params, prefix)
    return out


def git_commit(project_root: Path) -> str | None:
    """``git rev-parse HEAD`` of the repository holding project_root, plus ``-dirty``
    when tracked files have uncommitted changes; None outside git (or without git)."""
    root = Path(project_root)
    if not root.is_dir():
        return None

    def git(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(
                ["git", *args],
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


_HASH_FIELDS = ("md5", "sha256", "etag", "checksum", "hash")


def _lock_entries(entries: Any) -> list[dict[str, Any]]:
    rows = []
    for entry in entries or []:
        if isinstance(entry, Mapping):
            row = {"path": str(entry.get("path", ""))}
            row.update({k: entry[k] for k in _HASH_FIELDS if k in entry})
        else:
            row = {"path": str(entry)}
        rows.append(row)
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def dvc_stage_hashes(dvc_lock: Path) -> dict[str, str]:
    """``{"dvc.<stage>": <12 hex>}`` from dvc.lock: a SHA-256 over each stage's
    dependency, parameter and output hashes, in a stable order. ``{}`` if the
    file is missing (a malformed file warns and gives ``{}`` too)."""
    import yaml

    path = Path(dvc_lock)
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
            "params": _jsonable(stage.get("params") or {}),
            "outs": _lock_entries(stage.get("outs")),
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        out[f"dvc.{name}"] = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
    return out


# --------------------------------------------------------------------------- datasets


def _read_frame(path: Path):
    """A JSON list, JSON lines (optionally gzipped) or Parquet file as a DataFrame."""
    import gzip

    import pandas as pd

    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    if kind in {".parquet", ".pq"}:
        return pd.read_parquet(path)

    with path.open("rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rt", encoding="utf-8") as fh:
        text = fh.read()
    if kind not in {".jsonl", ".ndjson"} and text.lstrip().startswith("["):
        rows = json.loads(text)
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected a JSON list")
        if rows and not isinstance(rows[0], Mapping):
            return pd.DataFrame({"value": rows})
        return pd.DataFrame(rows)
    if kind in {".json", ".jsonl", ".ndjson", ""} or text.lstrip().startswith("{"):
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return pd.DataFrame(rows)
    raise ValueError(f"{path}: not a JSON list, JSON lines or Parquet file")


def _schema_friendly(df):
    """Nested values (lists, dicts, arrays) as JSON strings; mixed columns as strings."""
    df = df.copy()
    df.columns = [str(c) for c in df.columns]
    nested = (list, tuple, dict, set, frozenset)

    def is_missing(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    for col in df.columns:
        series = df[col]
        if series.dtype != object:
            continue
        values = [v for v in series if not is_missing(v)]
        if any(isinstance(v, nested) or hasattr(v, "tolist") for v in values):
            df[col] = [
                None
                if is_missing(v)
                else json.dumps(_jsonable(v), sort_keys=True, ensure_ascii=False)
                for v in series
            ]
        elif len({type(v) for v in values}) > 1:
            df[col] = [None if is_missing(v) else str(v) for v in series]
    return df


# --------------------------------------------------------------------------- logging


class StageLogger:
    """Logs into one stage's run. Obtained from ``PipelineTracker.stage()``."""

    def __init__(self, client: Any, run_id: str, parent_run_id: str | None = None):
        self.client = client
        self.run_id = run_id
        self.parent_run_id = parent_run_id

    def _batch(self, *, metrics=(), params=(), tags=()) -> None:
        metrics, params, tags = list(metrics), list(params), list(tags)
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])
        for i in range(0, len(params), _BATCH):
            self.client.log_batch(self.run_id, params=params[i : i + _BATCH])
        for i in range(0, len(tags), _BATCH):
            self.client.log_batch(self.run_id, tags=tags[i : i + _BATCH])

    def params(self, params: Mapping) -> None:
        """Log nested settings, flattened (see ``flatten``)."""
        from mlflow.entities import Param

        flat = flatten(params)
        self._batch(params=[Param(_safe_key(k), v) for k, v in flat.items()])

    def metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numeric metrics; None, NaN, infinities and non-numbers are skipped."""
        from mlflow.entities import Metric

        stamp = _now_ms()
        rows = []
        for key, value in metrics.items():
            if value is None:
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                _log.warning("metric %r: %r is not a number; not logged", key, value)
                continue
            if not math.isfinite(number):
                continue
            rows.append(Metric(_safe_key(key), number, stamp, int(step or 0)))
        self._batch(metrics=rows)

    def tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        limit = _tag_limit()
        self._batch(
            tags=[RunTag(_safe_key(k), _truncate(_scalar_text(v), limit)) for k, v in tags.items()]
        )

    def artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Log a file, or a directory's contents under artifact_path (default: its name)."""
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path or path.name)
        elif path.is_file():
            self.client.log_artifact(self.run_id, str(path), artifact_path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory to log as an artifact")

    def text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def figure_histogram(self, values: Iterable[Any], title: str, artifact_file: str) -> None:
        """A PNG histogram of the finite values (drawn with matplotlib's Agg canvas)."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:
            warnings.warn(f"matplotlib is not available; {artifact_file} not drawn ({exc})")
            return
        import numpy as np

        data = []
        for v in values if values is not None else []:
            try:
                number = float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                data.append(number)
        arr = np.asarray(data, dtype=float)

        fig = Figure(figsize=(6.4, 4.0), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        if arr.size:
            bins = int(min(50, max(10, math.sqrt(arr.size))))
            ax.hist(arr, bins=bins, color="#4c72b0", edgecolor="white")
            ax.set_title(f"{title}\nn={arr.size}, mean={arr.mean():.4g}, median={np.median(arr):.4g}")
        else:
            ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(title)
        ax.set_xlabel("value")
        ax.set_ylabel("count")
        fig.tight_layout()

        folder, name = posixpath.split(artifact_file)
        with tempfile.TemporaryDirectory(prefix="selectit-fig-") as tmp:
            local = Path(tmp) / (name or "histogram.png")
            fig.savefig(local, format="png")
            self.client.log_artifact(self.run_id, str(local), folder or None)

    def dataset(self, path: Path, name: str, context: str) -> None:
        """Record a data file as a dataset input of this run (context "input", "output", ...).

        The file is read into pandas (JSON list, JSON lines, Parquet; .gz allowed)
        so MLflow can store its schema, row count and digest; the source is the path.
        """
        mlflow = _mlflow()
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        path = Path(path)
        df = _schema_friendly(_read_frame(path))
        with _quiet():
            ds = mlflow.data.from_pandas(df, source=str(path), name=name)
            entity = ds._to_mlflow_entity()
        self.client.log_inputs(
            self.run_id,
            datasets=[DatasetInput(entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])],
        )


# --------------------------------------------------------------------------- tracker


def _end_status(exc: BaseException | None) -> str:
    if exc is None:
        return "FINISHED"
    if isinstance(exc, KeyboardInterrupt):
        return "KILLED"
    if isinstance(exc, SystemExit) and exc.code in (0, None):
        return "FINISHED"
    return "FAILED"


class PipelineTracker:
    """One MLflow parent run per pipeline run, one nested run per stage."""

    def __init__(self, tracking_uri: str, experiment: str, run_id_file: Path,
                 run_tags: Mapping[str, str] | None = None):
        """`run_tags` go on every run this tracker creates (provenance: git commit, DVC hashes)."""
        _telemetry_off()
        self.run_tags = {_safe_key(k): str(v) for k, v in (run_tags or {}).items()}
        self.tracking_uri = str(tracking_uri)
        self.experiment = experiment
        self.run_id_file = Path(run_id_file)
        self._client = None
        self._experiment_id: str | None = None
        self._active_parent: str | None = None

    # -- store

    @property
    def client(self):
        """An MlflowClient bound to this tracker's URI (no global state is changed)."""
        if self._client is None:
            _mlflow()
            from mlflow import MlflowClient

            with _quiet():
                self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def experiment_id(self) -> str:
        if self._experiment_id is not None:
            return self._experiment_id
        from mlflow.exceptions import MlflowException

        client = self.client
        with _quiet():
            exp = client.get_experiment_by_name(self.experiment)
            if exp is None:
                try:
                    exp_id = client.create_experiment(
                        self.experiment, artifact_location=_artifact_root_for(self.tracking_uri)
                    )
                except MlflowException as exc:  # another process created it meanwhile
                    if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    exp_id = client.get_experiment_by_name(self.experiment).experiment_id
            else:
                exp_id = exp.experiment_id
                if exp.lifecycle_stage == "deleted":
                    client.restore_experiment(exp_id)
        self._experiment_id = exp_id
        return exp_id

    def _base_tags(self, run_name: str) -> dict[str, str]:
        from mlflow.utils.mlflow_tags import (
            MLFLOW_RUN_NAME,
            MLFLOW_SOURCE_NAME,
            MLFLOW_SOURCE_TYPE,
            MLFLOW_USER,
        )

        tags = {MLFLOW_RUN_NAME: run_name, MLFLOW_SOURCE_TYPE: "LOCAL"}
        try:
            tags[MLFLOW_USER] = getpass.getuser()
        except Exception:
            pass
        if sys.argv and sys.argv[0]:
            tags[MLFLOW_SOURCE_NAME] = Path(sys.argv[0]).name
        return tags

    def _create_run(self, experiment_id: str, run_name: str, extra: Mapping[str, str]) -> str:
        tags = {**self._base_tags(run_name), **self.run_tags, **extra}
        with _quiet():
            run = self.client.create_run(experiment_id, tags=tags, run_name=run_name)
        return run.info.run_id

    def _write_run_id(self, run_id: str) -> None:
        self.run_id_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.run_id_file.with_name(f".{self.run_id_file.name}.{os.getpid()}.tmp")
        tmp.write_text(run_id + "\n", encoding="utf-8")
        os.replace(tmp, self.run_id_file)

    def recorded_run_id(self) -> str | None:
        """The parent run id in run_id_file if it names a live run of this store."""
        from mlflow.exceptions import MlflowException

        try:
            run_id = self.run_id_file.read_text(encoding="utf-8").strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not run_id:
            return None
        try:
            with _quiet():
                run = self.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                _log.info("%s names run %s, which this store does not have", self.run_id_file, run_id)
                return None
            raise
        if run.info.lifecycle_stage != "active":
            return None
        return run_id

    # -- contexts

    @contextlib.contextmanager
    def pipeline(
        self, run_name: str, params: Mapping, tags: Mapping[str, str] | None = None
    ) -> Iterator[str]:
        """The parent run of one pipeline run; yields its id (also written to run_id_file)."""
        if self._active_parent is not None:
            raise RuntimeError("pipeline() is already active on this tracker")
        run_id = self._create_run(self.experiment_id(), run_name, {"selectit.role": "pipeline"})
        logger = StageLogger(self.client, run_id)
        self._active_parent = run_id
        _ACTIVE_PARENTS.add(run_id)
        error: BaseException | None = None
        try:
            self._write_run_id(run_id)
            logger.params(params or {})
            if tags:
                logger.tags(tags)
            yield run_id
        except BaseException as exc:
            error = exc
            raise
        finally:
            _ACTIVE_PARENTS.discard(run_id)
            self._active_parent = None
            self.client.set_terminated(run_id, _end_status(error))

    @contextlib.contextmanager
    def stage(
        self, name: str, params: Mapping | None = None, *, new_parent: bool = False
    ) -> Iterator[StageLogger]:
        """A nested run for one stage; yields its StageLogger.

        The parent is the run of an enclosing ``pipeline()`` of this tracker, else
        the run named in run_id_file (a stage in its own process), else a new
        parent run named "pipeline" that is recorded there. ``new_parent=True``
        skips the file and starts a new parent (for the first stage of a
        stage-per-process pipeline run). A parent that no pipeline() of this
        process holds open takes the stage's status when the stage ends.
        """
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        if new_parent and self._active_parent is not None:
            raise ValueError("new_parent=True inside pipeline(): the stage belongs to that run")
        parent_id = self._active_parent
        if parent_id is None and not new_parent:
            parent_id = self.recorded_run_id()
        if parent_id is None:
            parent_id = self._create_run(
                self.experiment_id(), "pipeline", {"selectit.role": "pipeline"}
            )
            self._write_run_id(parent_id)
        detached = parent_id not in _ACTIVE_PARENTS

        client = self.client
        experiment_id = client.get_run(parent_id).info.experiment_id
        run_id = self._create_run(
            experiment_id, name, {MLFLOW_PARENT_RUN_ID: parent_id, "selectit.stage": name}
        )
        if detached:
            client.update_run(parent_id, status="RUNNING")
        logger = StageLogger(client, run_id, parent_id)
        error: BaseException | None = None
        try:
            if params:
                logger.params(params)
            yield logger
        except BaseException as exc:
            error = exc
            raise
        finally:
            status = _end_status(error)
            client.set_terminated(run_id, status)
            if detached:
                client.set_terminated(parent_id, status)
