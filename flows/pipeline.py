"""The whole pipeline in one flow: ingest, validate, score (each rater), aggregate, select."""

from __future__ import annotations

import dataclasses
import time

from prefect import flow

from flows.aggregate import aggregate_flow
from flows.common import setup, stage_main
from flows.ingest import ingest_flow
from flows.score import score_flow
from flows.select import select_flow
from flows.validate import validate_flow


@flow(name="selectit-pipeline", log_prints=True)
def pipeline_flow(params_path: str, data_dir: str, progress: bool = True) -> dict:
    params, layout, tracker = setup(params_path, data_dir)
    started = time.perf_counter()
    with tracker.pipeline(f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}", dataclasses.asdict(params)):
        results = {"ingest": ingest_flow(params_path, data_dir, new_pipeline_run=False), "validate": validate_flow(params_path, data_dir)}
        for rater in params.score.raters:
            results[f"score@{rater}"] = score_flow(params_path, data_dir, rater, progress)
        results["aggregate"] = aggregate_flow(params_path, data_dir)
        results["select"] = select_flow(params_path, data_dir)
    results["seconds"] = time.perf_counter() - started
    print(f"pipeline finished in {results['seconds']:.0f} s: {results['select']['selected']} examples selected "
          f"-> {layout.selected}")
    return results


if __name__ == "__main__":
    stage_main(pipeline_flow, __doc__)
