from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import IngestConfig
from selectit.ingest.sources import ingest
from selectit.layout import Layout
from selectit.ingest.records import write_example_records, write_rejects
from tasks.common import write_json


@task(name="ingest-sources", cache_policy=NO_CACHE)
def ingest_sources(cfg: IngestConfig, layout: Layout) -> dict:
    """Fetch and normalise the sources; write examples, rejects and a summary."""
    result = ingest([cfg.source], cfg.limit, layout.downloads)
    out = layout.ingested
    write_example_records(result.examples, out / "examples.jsonl")
    write_rejects(result.rejects, out / "rejects.jsonl")
    summary = {
        "sources": result.sources,
        "examples_read": result.n_read,
        "examples": len(result.examples),
        "rejects": len(result.rejects),
        "duplicates": result.n_duplicates,
        "params": {"ingest": vars(cfg)},
    }
    write_json(out / "summary.json", summary)
    return summary
