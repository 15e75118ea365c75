"""The validate stage on a data folder: the suite over the ingested records, the hygiene pass
(benchmark questions, near-duplicates) over the valid ones, then the rest split into the
examples to score and the held-out ones."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

from selectit.checks.examples import cut_to_fit, validate_record_file
from selectit.config import HygieneConfig, ValidateConfig
from selectit.core.io import atomic_write
from selectit.core.layout import Layout
from selectit.core.records import TRUNCATED, example_record_line, flag_line, iter_example_records, write_rejects
from selectit.hygiene.injection import FLAG as INJECTION_FLAG
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

    def valid_with_lengths():
        """(the valid example, its response cut to validate.max_chars; the response's length before)."""
        for position, example in enumerate(iter_example_records(ingested)):
            if position not in result.rejected:
                yield cut_to_fit(example, cfg.max_chars), len(example.output)

    def valid_examples():
        return (example for example, _ in valid_with_lengths())

    removed = clean(valid_examples(), hygiene, benchmarks_dir, progress)
    kept_ids = [i for i in result.valid_ids if i not in removed.rejects]
    held = heldout_ids(kept_ids, cfg.heldout, cfg.seed)

    flags = []

    def split(kept_out, heldout_out) -> None:
        for example, length in valid_with_lengths():
            if example.id not in removed.rejects:
                (heldout_out if example.id in held else kept_out).write(example_record_line(example))
                if len(example.output) < length:
                    cut = f"response cut from {length} to {len(example.output)} characters (validate.max_chars)"
                    flags.append(flag_line(example, TRUNCATED, cut))
                if (passage := removed.addresses_rater.get(example.id)) is not None:
                    flags.append(flag_line(example, INJECTION_FLAG, f"addresses the rater: {passage!r}"))

    atomic_write(
        layout.examples(layout.validated),
        lambda kept_out: atomic_write(layout.heldout, lambda out: split(kept_out, out)),
    )
    write_rejects([*result.rejects, *removed.rejects.values()], layout.rejects(layout.validated))
    atomic_write(layout.flagged(layout.validated), lambda out: out.writelines(flags))
    return ValidateSummary(
        examples_in=result.examples_in,
        valid=len(kept_ids),
        heldout=len(held),
        rejects=len(result.rejects) + len(removed.rejects),
        expectations=result.expectations,
        data_docs=str(result.docs_index) if result.docs_index else None,
        contaminated=dict(sorted(removed.contaminated.items())),
        near_duplicates=removed.near_duplicates,
        flagged=dict(Counter(json.loads(line)["flag"] for line in flags)),
        settings={"validate": dataclasses.asdict(cfg), "hygiene": dataclasses.asdict(hygiene)},
    )
