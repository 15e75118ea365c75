"""Stage 2: a Great Expectations suite over the records; rejects kept, Data Docs written."""

from __future__ import annotations

from prefect import flow

from flows.common import setup, stage_main
from tasks.validate import validate_records


@flow(name="validate", log_prints=True)
def validate_flow(params_path: str, data_dir: str) -> dict:
    params, layout, tracker = setup(params_path, data_dir)
    with tracker.stage("validate", {"validate": vars(params.validate)}) as log:
        summary = validate_records(params.validate, layout)
        log.metrics({k: summary[k] for k in ("examples_in", "valid", "rejects")})
        log.artifact(layout.validated / "rejects.jsonl", "validate")
        if summary["data_docs"]:
            log.artifact(layout.reports / "validation", "validate/data_docs")
    return summary


if __name__ == "__main__":
    stage_main(validate_flow, __doc__)
