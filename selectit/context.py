"""One run's context: its settings, where its data lives, and its MLflow parent run.

The pipeline flow opens one context, opens the MLflow parent run, and hands the
context to every stage flow; a stage flow run on its own (as DVC runs it) opens
its own. The context is plain data, so Prefect can record it as a flow parameter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from selectit.config import Params, load_params
from selectit.core.layout import Layout
from selectit.tracking.runs import PipelineTracker, default_tracking_uri


@dataclass(frozen=True)
class RunContext:
    params_path: Path
    params: Params
    layout: Layout
    project_root: Path  # the checkout: its git commit, dvc.yaml and default MLflow store
    progress: bool = True  # progress bars (off for scheduled runs, whose output goes to logs)
    parent_run_id: str | None = None  # the pipeline's MLflow run; None: a stage on its own
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

    @property
    def tracking_uri(self) -> str:
        return self.params.tracking.tracking_uri or default_tracking_uri(self.project_root)

    def tracker(self, run_tags: dict[str, str]) -> PipelineTracker:
        return PipelineTracker(self.tracking_uri, self.params.tracking.experiment, self.layout.mlflow_run_id, run_tags)

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
