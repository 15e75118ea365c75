"""Stage 1: read the source named in params and normalise it into example records."""

# No `from __future__ import annotations`: Prefect builds a pydantic model of the flow's
# parameters, and a served deployment cannot resolve RunContext from a string annotation.

import dataclasses
import itertools

import pandas as pd
from prefect import flow

from flows.common import stage_main, tracked_stage
from selectit.context import RunContext
from selectit.core.records import iter_example_records
from selectit.core.stages import Stage
from selectit.provenance import code_version
from selectit.summaries import IngestSummary, ledger_line
from selectit.tracking import lineage
from tasks.ingest import ingest_sources

DATASET_HEAD_ROWS = 10_000  # the rows MLflow's dataset digest reads (mlflow.data.digest_utils.MAX_ROWS)


@flow(name=Stage.INGEST.value, log_prints=True, version=code_version(__name__))
def ingest_flow(context: RunContext) -> IngestSummary:
    layout = context.layout
    cfg = context.params.ingest
    with tracked_stage(context, Stage.INGEST, {"ingest": dataclasses.asdict(cfg)}, __name__) as log:
        summary = ingest_sources(cfg, layout)
        log.metrics(summary.headline(), headline=True)
        log.tags({f"source.{i}.sha256": s["sha256"] for i, s in enumerate(summary.sources)})
        log.tags(lineage.output_sha(layout.examples(layout.ingested)))
        examples = layout.examples(layout.ingested)
        # MLflow's dataset record (schema, digest, row count) needs only the first rows
        # of the records and their number: the stage never holds all the texts for it.
        columns: dict[str, list[str]] = {"id": [], "instruction": [], "input": [], "output": []}
        for example in itertools.islice(iter_example_records(examples), DATASET_HEAD_ROWS):
            for name, values in columns.items():
                values.append(getattr(example, name))
        log.dataset(
            pd.DataFrame(columns),
            source=examples,
            name=summary.sources[0]["source"].rsplit("/", 1)[-1],
            context="input",
            num_rows=summary.examples,
        )
        log.artifact(layout.rejects(layout.ingested), Stage.INGEST)
        rows_in = summary.examples_read + summary.rejects
        print(ledger_line(Stage.INGEST, rows_in, summary.examples, layout.rejects(layout.ingested)))
    return summary


if __name__ == "__main__":
    stage_main(ingest_flow, __doc__)
