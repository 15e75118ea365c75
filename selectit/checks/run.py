"""The validate stage on a data folder: the suite over the ingested records, then the valid
ones split into the examples to score and the held-out ones."""

from __future__ import annotations

import dataclasses

from selectit.checks.examples import validate_record_file
from selectit.config import ValidateConfig
from selectit.core.io import atomic_write
from selectit.core.layout import Layout
from selectit.core.records import example_record_line, iter_example_records, write_rejects
from selectit.ingest.split import heldout_ids
from selectit.summaries import ValidateSummary


def validate_folder(cfg: ValidateConfig, layout: Layout) -> ValidateSummary:
    """Run the suite over the ingested records; write the valid ones, the held-out ones,
    the rejects and the Data Docs; return the summary.

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
    return ValidateSummary(
        examples_in=result.examples_in,
        valid=len(result.valid_ids),
        heldout=len(held),
        rejects=len(result.rejects),
        expectations=result.expectations,
        data_docs=str(result.docs_index) if result.docs_index else None,
        settings={"validate": dataclasses.asdict(cfg)},
    )
