"""Task of the validate stage: the Great Expectations suite over the ingested records."""

from __future__ import annotations

import dataclasses

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.checks.examples import validate_examples
from selectit.config import ValidateConfig
from selectit.ingest.records import read_example_records, write_example_records, write_rejects
from selectit.ingest.split import split_heldout
from selectit.layout import Layout
from selectit.provenance import code_version
from selectit.summaries import ValidateSummary


@task(name="validate-records", cache_policy=NO_CACHE, version=code_version(__name__))
def validate_records(cfg: ValidateConfig, layout: Layout) -> ValidateSummary:
    """Run the suite over the ingested records; keep the rejects, write the Data Docs."""
    examples = read_example_records(layout.examples(layout.ingested))
    result = validate_examples(examples, cfg, docs_dir=layout.validation_docs)
    kept, heldout = split_heldout(result.valid, cfg.heldout, cfg.seed)
    write_example_records(kept, layout.examples(layout.validated))
    write_example_records(heldout, layout.heldout)
    write_rejects(result.rejects, layout.rejects(layout.validated))
    summary = ValidateSummary(
        examples_in=len(examples),
        valid=len(result.valid),
        heldout=len(heldout),
        rejects=len(result.rejects),
        expectations=result.expectations,
        data_docs=str(result.docs_index) if result.docs_index else None,
        settings={"validate": dataclasses.asdict(cfg)},
    )
    summary.save(layout.validated)
    return summary
