"""Stage 1: read the sources named in params and normalise them into example records."""

from __future__ import annotations

from prefect import flow

from flows.common import setup, stage_main
from tasks.ingest import ingest_sources


@flow(name="ingest", log_prints=True)
def ingest_flow(params_path: str, data_dir: str, new_pipeline_run: bool = True) -> dict:
    """`new_pipeline_run`: start a new MLflow pipeline run (run on its own, as DVC does);
    the pipeline flow passes False because it has opened one already."""
    params, layout, tracker = setup(params_path, data_dir)
    with tracker.stage("ingest", {"ingest": vars(params.ingest)}, new_parent=new_pipeline_run) as log:
        summary = ingest_sources(params.ingest, layout)
        log.metrics({k: summary[k] for k in ("examples_read", "examples", "rejects", "duplicates")})
        log.tags({f"source.{i}.sha256": s["sha256"] for i, s in enumerate(summary["sources"])})
        for s in summary["sources"]:
            log.dataset(layout.ingested / "examples.jsonl", name=s["source"].rsplit("/", 1)[-1], context="input")
        log.artifact(layout.ingested / "rejects.jsonl", "ingest")
    return summary


if __name__ == "__main__":
    stage_main(ingest_flow, __doc__)
