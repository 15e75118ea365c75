"""One run's context: its settings, where its data lives, and its MLflow parent run.

The pipeline flow opens one context, opens the MLflow parent run, and hands the
context to every stage flow (`under_pipeline_run`). A stage flow run on its own
(as DVC runs it) opens its own and finds its parent run then (`on_its_own`). The
context is plain data, so Prefect can record it as a flow parameter.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from selectit.config import Params, load_params
from selectit.core.errors import InputError
from selectit.core.layout import Layout, model_cache
from selectit.hygiene.benchmark_texts import check_evaluated_files
from selectit.provenance import git_commit
from selectit.tracking.runs import PipelineTracker, default_tracking_uri


@dataclass(frozen=True)
class RunContext:
    params_path: Path
    params: Params
    layout: Layout
    project_root: Path  # the checkout: its git commit, dvc.yaml and default MLflow store
    progress: bool = True  # progress bars (off for scheduled runs, whose output goes to logs)
    parent_run_id: str | None = None  # the pipeline's MLflow run; None until under_pipeline_run or on_its_own
    parent_takes_stage_status: bool = False  # a stage on its own: its parent run ends as the stage ends
    record_in_dvc: bool = False  # record each finished stage in dvc.lock (the pipeline flow's runs)

    @classmethod
    def open(
        cls, params_path: str | Path, data_dir: str | Path, project_root: Path, progress: bool = True
    ) -> RunContext:
        return cls(Path(params_path), load_params(params_path), Layout(Path(data_dir)), Path(project_root), progress)

    def under_pipeline_run(self, run_id: str) -> RunContext:
        """The context the pipeline flow hands to its stages: its MLflow run, and DVC
        recording where this run writes the data that dvc.yaml versions."""
        return dataclasses.replace(self, parent_run_id=run_id, record_in_dvc=self.is_dvc_workspace)

    def on_its_own(self, new_pipeline_run: bool) -> RunContext:
        """The context of a stage run in its own process (DVC runs one a stage), with its
        MLflow parent: a new pipeline run when `new_pipeline_run` (the first stage, ingest),
        else the newest pipeline run of this data folder (a new one where there is none).
        The stage's status passes on to that run."""
        tracker = self.tracker()
        run_id = None if new_pipeline_run else tracker.find_pipeline_run(self.layout.root)
        run_id = run_id or tracker.open_pipeline_run("pipeline", self.layout.root)
        return dataclasses.replace(self, parent_run_id=run_id, parent_takes_stage_status=True)

    def check_ready(self, evaluates: bool = True) -> None:
        """What would otherwise fail late, checked in a second before any work: the folders the
        run writes are writable, and (when `evaluates`) every benchmark file the evaluation asks
        from parses. Each failure is one InputError naming the folder or the file and line."""
        folders = {"the run's data, --data": self.layout.root, "the model cache, SELECTIT_CACHE": model_cache()}
        if self.tracking_uri.startswith("sqlite:///"):
            store = Path(self.tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]).parent
            folders["the MLflow store, tracking.tracking_uri"] = store
        for what, folder in folders.items():
            if (blocked := unwritable_folder(folder)) is not None:
                raise InputError(
                    f"{blocked}: this folder cannot be written (it holds {what}); make it writable, or name another"
                )
        if evaluates and self.params.finetune.enabled:
            evaluate = self.params.evaluate
            check_evaluated_files(list(evaluate.active_benchmarks), Path(evaluate.benchmarks_dir))

    def without_ray(self) -> RunContext:
        """This context with ray.address null: the score stage rates in this process."""
        params = dataclasses.replace(self.params, ray=dataclasses.replace(self.params.ray, address=None))
        return dataclasses.replace(self, params=params)

    @property
    def tracking_uri(self) -> str:
        return self.params.tracking.tracking_uri or default_tracking_uri(self.project_root)

    def tracker(self) -> PipelineTracker:
        """The MLflow tracker; its runs are tagged with the commit of the code that made them."""
        provenance = {"git_commit": git_commit(self.project_root) or "unknown"}
        return PipelineTracker(self.tracking_uri, self.params.tracking.experiment, provenance)

    @property
    def is_dvc_workspace(self) -> bool:
        """Whether this run writes the data that the project's dvc.yaml versions (and so can
        record its stages in dvc.lock): the project's own params.yaml and data folder."""
        root = self.project_root.resolve()
        return (
            (root / "dvc.yaml").is_file()
            and self.params_path.resolve() == root / "params.yaml"
            and self.layout.root.resolve() == root / "data"
        )


def unwritable_folder(folder: Path) -> Path | None:
    """The first folder a run writing under `folder` could not write: the nearest existing
    one when `folder` is not there yet, else `folder` and each folder below it; for an existing
    file, the file or its folder (os.access also sees a read-only mount, whoever runs)."""
    folder = Path(folder).absolute()
    if not folder.exists():
        # Only the nearest existing folder matters: the run creates everything below it.
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return None if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK) else folder
    if folder.is_file():  # an output file (`selectit select --out x.json`): it and its folder
        return next((p for p in (folder, folder.parent) if not os.access(p, os.W_OK)), None)
    for top, _, _ in os.walk(folder):
        if not os.access(top, os.W_OK | os.X_OK):
            return Path(top)
    return None
