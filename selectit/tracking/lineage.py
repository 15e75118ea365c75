"""Links from an evaluation number back to the input: each stage's MLflow run is
tagged with the hash of what it produced and of what it read, so every step can be
followed in MLflow (and the hashes checked against the files DVC versions)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlflow import MlflowClient

from selectit.core.io import file_sha256
from selectit.tracking.runs import STAGE_TAG, StageLogger

# Tag names; values are sha256 hex digests of files, or MLflow run ids.
OUTPUT_SHA = "lineage.output_sha256"  # what this stage's run produced (its main file)
INPUT_SHA = "lineage.input_sha256"  # the file it read that the previous step produced
INPUT_RUN = "lineage.input_run_id"  # that previous step's MLflow run, where known


def path_sha256(path: Path) -> str:
    """A file's sha256; for a folder, the sha256 of its files' names and hashes."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    entries = sorted((p.relative_to(path).as_posix(), file_sha256(p)) for p in path.rglob("*") if p.is_file())
    return hashlib.sha256("".join(f"{name}\0{sha}\n" for name, sha in entries).encode()).hexdigest()


def output_sha(path: Path) -> dict[str, str]:
    """The output tag of a stage run, when the stage left that output."""
    return {OUTPUT_SHA: path_sha256(path)} if Path(path).exists() else {}


def input_tags(log: StageLogger, stage: str, path: Path) -> dict[str, str]:
    """Tags naming the input file by hash, and the run of `stage` that produced it."""
    if not Path(path).exists():
        return {}
    sha = path_sha256(path)
    return {INPUT_SHA: sha, **input_run(log, stage, sha)}


def input_run(log: StageLogger, stage: str, sha: str) -> dict[str, str]:
    experiment_id = log.client.get_run(log.run_id).info.experiment_id
    run_id = find_stage_run(log.client, experiment_id, stage, sha)
    return {INPUT_RUN: run_id} if run_id else {}


def find_stage_run(client: MlflowClient, experiment_id: str, stage: str, output_sha256: str) -> str | None:
    """The newest finished run of `stage` that produced the file with this hash."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{STAGE_TAG}` = '{stage}' and tags.`{OUTPUT_SHA}` = '{output_sha256}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None
