"""The validate stage on a data folder: the suite over the ingested records, the hygiene pass
(benchmark questions, near-duplicates) over the valid ones, then the rest split into the
examples to score and the held-out ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from selectit.checks.examples import validate_record_file
from selectit.config import HygieneConfig, ValidateConfig
from selectit.core.io import atomic_write
from selectit.core.layout import Layout
from selectit.core.records import example_record_line, iter_example_records, write_rejects
from selectit.hygiene.run import clean
from selectit.ingest.split import heldout_ids
from selectit.summaries import ValidateSummary


def validate_folder(
    cfg: ValidateConfig, hygiene: HygieneConfig, benchmarks_dir: Path, layout: Layout, progress: bool
) -> ValidateSummary:
    """Run the suite over the ingested records, then the hygiene pass over the valid ones; write
    the kept ones, the held-out ones, the rejects and the Data Docs; return the summary.

    The records are streamed: the suite's frame holds their texts once, and the valid
    ones are then read again for the hygiene pass and copied, row by row, into the
    scored and the held-out files. Only the suite's rejects count towards
    validate.max_reject_fraction: the hygiene pass removes good rows that would
    spoil the evaluation or repeat others, not broken ones."""
    ingested = layout.examples(layout.ingested)
    result = validate_record_file(ingested, cfg, docs_dir=layout.validation_docs)

    def valid_examples():
        return (e for position, e in enumerate(iter_example_records(ingested)) if position not in result.rejected)

    removed = clean(valid_examples(), hygiene, benchmarks_dir, progress)
    kept_ids = [i for i in result.valid_ids if i not in removed.rejects]
    held = heldout_ids(kept_ids, cfg.heldout, cfg.seed)

    def split(kept_out, heldout_out) -> None:
        for example in valid_examples():
            if example.id not in removed.rejects:
                (heldout_out if example.id in held else kept_out).write(example_record_line(example))

    atomic_write(
        layout.examples(layout.validated),
        lambda kept_out: atomic_write(layout.heldout, lambda out: split(kept_out, out)),
    )
    write_rejects([*result.rejects, *removed.rejects.values()], layout.rejects(layout.validated))
    return ValidateSummary(
        examples_in=result.examples_in,
        valid=len(kept_ids),
        heldout=len(held),
        rejects=len(result.rejects) + len(removed.rejects),
        expectations=result.expectations,
        data_docs=str(result.docs_index) if result.docs_index else None,
        contaminated=dict(sorted(removed.contaminated.items())),
        near_duplicates=removed.near_duplicates,
        settings={"validate": dataclasses.asdict(cfg), "hygiene": dataclasses.asdict(hygiene)},
    )
