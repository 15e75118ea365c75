"""Task of the validate stage: the Great Expectations suite over the ingested records."""

from __future__ import annotations

import dataclasses

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.checks.examples import validate_record_file
from selectit.config import ValidateConfig
from selectit.core.io import atomic_write
from selectit.core.layout import Layout
from selectit.core.records import example_record_line, iter_example_records, write_rejects
from selectit.ingest.split import heldout_ids
from selectit.provenance import code_version
from selectit.summaries import ValidateSummary


@task(name="validate-records", cache_policy=NO_CACHE, version=code_version(__name__))
def validate_records(cfg: ValidateConfig, layout: Layout) -> ValidateSummary:
    """Run the suite over the ingested records; keep the rejects, write the Data Docs.

    The records are streamed: the suite's frame holds their texts once, and the valid
    ones are then copied, row by row, into the scored and the held-out files."""
    ingested = layout.examples(layout.ingested)
    result = validate_record_file(ingested, cfg, docs_dir=layout.validation_docs)
    held = heldout_ids(result.valid_ids, cfg.heldout, cfg.seed)

    def split(kept_out, heldout_out) -> None:
        for position, example in enumerate(iter_example_records(ingested)):
            if position not in result.rejected:
                (heldout_out if example.id in held else kept_out).write(example_record_line(example))

    atomic_write(
        layout.examples(layout.validated),
        lambda kept_out: atomic_write(layout.heldout, lambda out: split(kept_out, out)),
    )
    write_rejects(result.rejects, layout.rejects(layout.validated))
    summary = ValidateSummary(
        examples_in=result.examples_in,
        valid=len(result.valid_ids),
        heldout=len(held),
        rejects=len(result.rejects),
        expectations=result.expectations,
        data_docs=str(result.docs_index) if result.docs_index else None,
        settings={"validate": dataclasses.asdict(cfg)},
    )
    summary.save(layout.validated)
    return summary
