"""Task of the ingest stage: fetch and normalise the source, keep the rejects."""

from __future__ import annotations

import dataclasses

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import IngestConfig
from selectit.ingest.records import write_example_records, write_rejects
from selectit.ingest.sources import DownloadLimits, ingest
from selectit.layout import Layout
from selectit.provenance import code_version
from selectit.summaries import IngestSummary


@task(name="ingest-sources", cache_policy=NO_CACHE, version=code_version(__name__))
def ingest_sources(cfg: IngestConfig, layout: Layout) -> IngestSummary:
    """Fetch and normalise the sources; write examples, rejects and a summary."""
    IngestSummary.discard(layout.ingested)
    limits = DownloadLimits(max_bytes=cfg.max_download_mb << 20, deadline_s=cfg.download_timeout_s)
    result = ingest([cfg.source], cfg.limit, layout.downloads, cfg.rows_key, limits)
    write_example_records(result.examples, layout.examples(layout.ingested))
    write_rejects(result.rejects, layout.rejects(layout.ingested))
    summary = IngestSummary(
        sources=result.sources,
        examples_read=result.n_read,
        examples=len(result.examples),
        rejects=len(result.rejects),
        duplicates=result.n_duplicates,
        settings={"ingest": dataclasses.asdict(cfg)},
    )
    summary.save(layout.ingested)
    return summary
