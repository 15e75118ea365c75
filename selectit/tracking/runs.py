"""MLflow runs of the pipeline: one parent run per pipeline run, one nested run per stage.

Everything goes through an ``MlflowClient`` bound to the tracker's URI (no global
tracking URI and no fluent "active run" stack), so two stores used in one process
never mix their runs. The few MLflow internals the project needs are here, each
with its reason.

Who owns the parent run (the caller always names it: ``stage(..., parent_run_id=...)``):
- the pipeline flow opens it with ``PipelineTracker.pipeline()`` and ends it;
- a stage run on its own (DVC runs ``python -m flows.<stage>``, one process a
  stage) is given a parent opened with ``open_pipeline_run`` (ingest) or found
  with ``find_pipeline_run`` (later stages), and passes its status on to it
  (``parent_takes_status=True``). Pipeline runs are tagged with the data folder
  they write, so that a later stage finds the run of its own data folder.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient

# MLflow internals, kept to this module (check them on an MLflow upgrade):
# - digest_utils: head_digest must give the digest MLflow gives the whole table, so it uses
#   MLflow's row sample size and hash; no public function takes a digest of part of a table.
# - mlflow_tags: the system tags MLflow's UI reads (nesting under a parent run, run name,
#   source, user, a dataset's role); a client-made run gets them only by setting them.
from mlflow.data import digest_utils
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import (
    MLFLOW_DATASET_CONTEXT,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NAME,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
)

from selectit.core.errors import SelectitError

log = logging.getLogger(__name__)

# MLflow's documented limits on key and value lengths, and on one log_batch call.
KEY_LIMIT = 250
PARAM_VALUE_LIMIT = 6000
TAG_VALUE_LIMIT = 8000
BATCH_PARAMS = 100
BATCH_METRICS = 1000

ROLE_TAG = "selectit.role"
STAGE_TAG = "selectit.stage"
DATA_TAG = "selectit.data"  # on pipeline runs: the data folder the run writes
# The experiment's kind, which MLflow 3's UI reads to choose between its GenAI views (traces) and
# its machine-learning views (the runs table, the compare view). The tag is MLflow's own
# (`mlflow.experimentKind`; its UI's ExperimentKind values); no public constant names it.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MACHINE_LEARNING_KIND = "custom_model_development"
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")


# What MLflow's REST client reports when a tracking server fails a request or cannot be reached
# (after its own retries, MLFLOW_HTTP_REQUEST_MAX_RETRIES): the server's database down, the server
# stopped. Other codes (RESOURCE_ALREADY_EXISTS, ...) are answers, and callers handle them.
SERVER_FAILURE_CODES = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE"}


class TrackingServerError(SelectitError):
    """The MLflow tracking server failed or could not be reached; the message names it."""


class _ServerClient:
    """An MlflowClient for a tracking server whose failures become one TrackingServerError
    naming the server, in place of a REST traceback from deep inside a stage."""

    def __init__(self, client: MlflowClient, tracking_uri: str):
        self._client = client
        self._tracking_uri = tracking_uri

    def __getattr__(self, name: str):
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except MlflowException as exc:
                if exc.error_code not in SERVER_FAILURE_CODES:
                    raise
                reason = " ".join(str(exc.message).split())
                raise TrackingServerError(
                    f"MLflow tracking server {self._tracking_uri} failed ({name}): {_truncate(reason, 300)}"
                ) from exc

        return call


def default_tracking_uri(project_root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else an SQLite store ``<project_root>/mlflow.db``.

    MLflow 3 refuses its plain file store (``./mlruns``) unless told otherwise;
    SQLite is its recommended local backend. Artifacts go beside the database."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return env or f"sqlite:///{(Path(project_root).resolve() / 'mlflow.db').as_posix()}"


def _artifact_root(tracking_uri: str) -> str | None:
    """``<db folder>/mlruns`` for a file-backed SQLite store, else the store's default."""
    prefix = "sqlite:///"
    db = tracking_uri[len(prefix) :].split("?", 1)[0] if tracking_uri.startswith(prefix) else ""
    if not db or db == ":memory:":
        return None
    return (Path(db).resolve().parent / "mlruns").as_uri()


def safe_key(key: Any) -> str:
    """A key MLflow accepts: characters it refuses (such as "@") become "_"."""
    text = _BAD_KEY_CHARS.sub("_", str(key)).strip().strip("/")
    return text.replace("..", "_")[:KEY_LIMIT] or "_"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def flatten(settings: Mapping, prefix: str = "") -> dict[str, str]:
    """Nested settings as flat MLflow params.

    ``{"score": {"k": 5, "raters": ["a", "b"]}}`` becomes ``{"score.k": "5",
    "score.raters": "a,b"}``; None is "null", booleans "true"/"false", a list of
    mappings is JSON, an empty mapping "{}"; values are cut to MLflow's limit."""
    out: dict[str, str] = {}
    for key, value in settings.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        elif isinstance(value, Mapping):
            out[name] = "{}"
        elif isinstance(value, (list, tuple)) and any(isinstance(v, (Mapping, list, tuple)) for v in value):
            out[name] = _truncate(json.dumps(value, sort_keys=True, default=str), PARAM_VALUE_LIMIT)
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(_text(v) for v in value) if value else "[]"
        else:
            out[name] = _truncate(_text(value), PARAM_VALUE_LIMIT)
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Drop MLflow's informational chatter (schema hints, database migrations)."""
    loggers = [logging.getLogger(name) for name in ("mlflow.store.db.utils", "alembic.runtime.migration")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"The specified dataset source can be interpreted")
            warnings.filterwarnings("ignore", message=r"Hint: Inferred schema contains integer")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mlflow\.")
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"mlflow\.")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _folder_tag(folder: Path) -> str:
    return Path(folder).resolve().as_posix()


def _end_status(error: BaseException | None) -> str:
    if error is None or (isinstance(error, SystemExit) and error.code in (0, None)):
        return "FINISHED"
    # Ctrl-C, SIGTERM (selectit.core.interrupts; Prefect's TerminationSignal): stopped, not failed.
    return "FAILED" if isinstance(error, (Exception, SystemExit)) else "KILLED"


class StageLogger:
    """Logs into one stage's run; obtained from ``PipelineTracker.stage()``."""

    def __init__(self, client: MlflowClient, run_id: str, stage: str, parent_run_id: str | None = None):
        self.client = client
        self.run_id = run_id
        self.stage = stage
        self.parent_run_id = parent_run_id

    def params(self, settings: Mapping) -> None:
        """Nested settings, flattened (see ``flatten``)."""
        params = [Param(safe_key(k), v) for k, v in flatten(settings).items()]
        for i in range(0, len(params), BATCH_PARAMS):
            self.client.log_batch(self.run_id, params=params[i : i + BATCH_PARAMS])

    def metrics(self, metrics: Mapping[str, Any], headline: bool = False) -> None:
        """Numeric metrics; None, NaN and infinities are skipped (MLflow cannot chart them).

        ``headline=True`` also logs them on the pipeline's parent run as
        ``<stage>.<name>``, so MLflow's run table and compare view work on parent runs."""
        self._log_metrics(self.run_id, metrics)
        if headline and self.parent_run_id:
            self._log_metrics(self.parent_run_id, {f"{self.stage}.{k}": v for k, v in metrics.items()})

    def parent_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Metrics on the pipeline's parent run under the names given (no stage prefix)."""
        if self.parent_run_id:
            self._log_metrics(self.parent_run_id, metrics)

    def _log_metrics(self, run_id: str, metrics: Mapping[str, Any]) -> None:
        stamp = int(time.time() * 1000)
        rows = [
            Metric(safe_key(k), float(v), stamp, 0)
            for k, v in metrics.items()
            if v is not None and math.isfinite(float(v))
        ]
        for i in range(0, len(rows), BATCH_METRICS):
            self.client.log_batch(run_id, metrics=rows[i : i + BATCH_METRICS])

    def tags(self, tags: Mapping[str, Any]) -> None:
        rows = [RunTag(safe_key(k), _truncate(_text(v), TAG_VALUE_LIMIT)) for k, v in tags.items()]
        for i in range(0, len(rows), BATCH_PARAMS):
            self.client.log_batch(self.run_id, tags=rows[i : i + BATCH_PARAMS])

    def artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """A file, or a folder's contents under artifact_path (default: the folder's name)."""
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path or path.name)
        elif path.is_file():
            self.client.log_artifact(self.run_id, str(path), artifact_path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder to log as an artifact")

    def text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def figure(self, draw, artifact_file: str) -> None:
        """Log a picture: ``draw(path)`` writes it (see selectit.plots) into a temporary file."""
        folder, _, name = artifact_file.rpartition("/")
        with tempfile.TemporaryDirectory(prefix="selectit-figure-") as tmp:
            local = Path(tmp) / name
            draw(local)
            self.client.log_artifact(self.run_id, str(local), folder or None)

    def dataset(self, frame, source: Path | str, name: str, context: str, num_rows: int | None = None) -> None:
        """Record a table (pandas) as a dataset input of this run: schema, row count, digest,
        and its file as the source; context is "input", "output", ...

        With `num_rows`, `frame` holds only the first rows (at least MLflow's digest sample,
        10,000) of a table of text columns that long: the record is the one the whole
        table would give, and a stage never needs to hold the whole table for it."""
        with _quiet():
            if num_rows is None:
                described = mlflow.data.from_pandas(frame, source=str(source), name=name).to_dict()
            else:
                digest = head_digest(frame, num_rows)
                described = mlflow.data.from_pandas(frame, source=str(source), name=name, digest=digest).to_dict()
                described["profile"] = json.dumps({"num_rows": num_rows, "num_elements": num_rows * frame.shape[1]})
        dataset = DatasetInput(Dataset(**described), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])
        try:
            self.client.log_inputs(self.run_id, datasets=[dataset])
        except MlflowException as exc:
            # Two runs logging the same dataset at once (two clones of a pipeline against one
            # tracking server): the server looks the dataset up, finds none, and both insert it;
            # the second insert breaks the unique key (experiment, name, digest). The dataset is
            # there now, so logging it again links it to this run.
            if "unique" not in str(exc).lower():
                raise
            self.client.log_inputs(self.run_id, datasets=[dataset])


def head_digest(head, num_rows: int) -> str:
    """MLflow's digest of a pandas table (mlflow.data.digest_utils.compute_pandas_digest) from
    its first rows and its length: MLflow hashes only the first MAX_ROWS rows and the row
    count, and keeps the columns whose values are all strings (which the head stands for
    when every column holds text) or numbers."""
    import numpy as np
    import pandas as pd

    trimmed = head.head(digest_utils.MAX_ROWS)
    string_columns = trimmed.columns[(head.map(type) == str).all(axis=0)]  # noqa: E721 (as MLflow does)
    numeric_columns = trimmed.select_dtypes(include=[np.number]).columns
    trimmed = trimmed[string_columns.union(numeric_columns)]
    hashed = [pd.util.hash_pandas_object(trimmed).values, np.int64(num_rows)]
    return digest_utils.get_normalized_md5_digest(hashed + [str(column).encode() for column in head.columns])


class PipelineTracker:
    """Creates the parent run of a pipeline run and the nested run of each stage."""

    def __init__(self, tracking_uri: str, experiment: str, run_tags: Mapping[str, str] | None = None):
        """`run_tags` go on every run this tracker creates (provenance: git commit, code version)."""
        self.tracking_uri = str(tracking_uri)
        self.experiment = experiment
        self.run_tags = {safe_key(k): str(v) for k, v in (run_tags or {}).items()}
        with _quiet():
            client = MlflowClient(tracking_uri=self.tracking_uri)
        remote = self.tracking_uri.startswith(("http://", "https://"))
        self.client = _ServerClient(client, self.tracking_uri) if remote else client
        self._experiment_id: str | None = None

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            with _quiet():
                found = self.client.get_experiment_by_name(self.experiment)
                if found is None:
                    try:
                        self._experiment_id = self.client.create_experiment(
                            self.experiment,
                            artifact_location=_artifact_root(self.tracking_uri),
                            tags={EXPERIMENT_KIND_TAG: MACHINE_LEARNING_KIND},
                        )
                    except MlflowException as exc:  # another process created it meanwhile
                        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                            raise
                        self._experiment_id = self.client.get_experiment_by_name(self.experiment).experiment_id
                else:
                    self._experiment_id = found.experiment_id
                    if found.lifecycle_stage == "deleted":
                        self.client.restore_experiment(found.experiment_id)
                    # An experiment made before the tag existed; a kind someone chose stays.
                    if EXPERIMENT_KIND_TAG not in found.tags:
                        self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, MACHINE_LEARNING_KIND)
        return self._experiment_id

    def _create_run(self, run_name: str, tags: Mapping[str, str], experiment_id: str | None = None) -> str:
        base = {
            MLFLOW_RUN_NAME: run_name,
            MLFLOW_SOURCE_TYPE: "LOCAL",
            MLFLOW_SOURCE_NAME: Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "selectit",
        }
        with contextlib.suppress(Exception):  # no user name in some containers
            base[MLFLOW_USER] = getpass.getuser()
        with _quiet():
            run = self.client.create_run(
                experiment_id or self.experiment_id(), tags={**base, **self.run_tags, **tags}, run_name=run_name
            )
        return run.info.run_id

    def open_pipeline_run(self, run_name: str, data_dir: Path) -> str:
        """A new parent run for a pipeline run that writes `data_dir`; its id."""
        return self._create_run(run_name, {ROLE_TAG: "pipeline", DATA_TAG: _folder_tag(data_dir)})

    def find_pipeline_run(self, data_dir: Path) -> str | None:
        """The newest pipeline run of this experiment that wrote `data_dir` and is not deleted."""
        wanted, page_token = _folder_tag(data_dir), None
        with _quiet():
            while True:
                # Filtered on the role only: a folder's path may hold quotes, which a filter cannot.
                page = self.client.search_runs(
                    [self.experiment_id()],
                    filter_string=f"tags.`{ROLE_TAG}` = 'pipeline'",
                    order_by=["attributes.start_time DESC"],
                    page_token=page_token,
                )
                found = next((run for run in page if run.data.tags.get(DATA_TAG) == wanted), None)
                if found is not None or not page.token:
                    return found.info.run_id if found else None
                page_token = page.token

    @contextlib.contextmanager
    def pipeline(self, run_name: str, settings: Mapping, data_dir: Path) -> Iterator[str]:
        """The parent run of one pipeline run, which writes `data_dir`; yields its id."""
        run_id = self.open_pipeline_run(run_name, data_dir)
        with self._terminated([run_id]):
            StageLogger(self.client, run_id, "pipeline").params(settings)
            yield run_id

    @contextlib.contextmanager
    def stage(
        self,
        name: str,
        settings: Mapping | None = None,
        *,
        parent_run_id: str,
        parent_takes_status: bool = False,
    ) -> Iterator[StageLogger]:
        """A run for one stage, nested under ``parent_run_id``; yields its StageLogger.

        Under the pipeline flow, the pipeline owns its run's status. A stage on its
        own passes its status on to its parent (``parent_takes_status``): the parent
        runs while the stage does, and ends as the stage ends."""
        experiment_id = self.client.get_run(parent_run_id).info.experiment_id
        run_id = self._create_run(name, {MLFLOW_PARENT_RUN_ID: parent_run_id, STAGE_TAG: name}, experiment_id)
        if parent_takes_status:
            self.client.update_run(parent_run_id, status="RUNNING")
        with self._terminated([run_id, parent_run_id] if parent_takes_status else [run_id]):
            logger = StageLogger(self.client, run_id, name, parent_run_id)
            if settings:
                logger.params(settings)
            yield logger

    @contextlib.contextmanager
    def _terminated(self, run_ids: list[str]) -> Iterator[None]:
        """Ends the runs as the block ends: FINISHED, FAILED, or KILLED (Ctrl-C)."""
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            for run_id in run_ids:
                try:
                    self.client.set_terminated(run_id, _end_status(error))
                except TrackingServerError:
                    if error is None:
                        raise
                    # The server is down: the error that stopped the run says so; this one adds nothing.
                    break
