from __future__ import annotations

import dataclasses

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import ValidateConfig
from selectit.layout import Layout
from selectit.ingest.records import read_example_records, write_example_records, write_rejects
from selectit.checks.examples import ValidationSettings, validate_examples
from tasks.common import write_json


@task(name="validate-records", cache_policy=NO_CACHE)
def validate_records(cfg: ValidateConfig, layout: Layout) -> dict:
    """Great Expectations suite over the ingested records; rejects kept, Data Docs written."""
    examples = read_example_records(layout.ingested / "examples.jsonl")
    result = validate_examples(examples, ValidationSettings(**dataclasses.asdict(cfg)),
                               docs_dir=layout.reports / "validation")
    out = layout.validated
    write_example_records(result.valid, out / "examples.jsonl")
    write_rejects(result.rejects, out / "rejects.jsonl")
    summary = {
        "examples_in": len(examples),
        "valid": len(result.valid),
        "rejects": len(result.rejects),
        "expectations": result.expectations,
        "data_docs": str(result.docs_index) if result.docs_index else None,
        "params": {"validate": vars(cfg)},
    }
    write_json(out / "summary.json", summary)
    return summary
