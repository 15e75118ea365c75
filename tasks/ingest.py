"""Task of the ingest stage: fetch and normalise the source, keep the rejects."""

from __future__ import annotations

import dataclasses

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import IngestConfig
from selectit.core.layout import Layout
from selectit.ingest.sources import DownloadLimits, ingest_into
from selectit.provenance import code_version
from selectit.summaries import IngestSummary


@task(name="ingest-sources", cache_policy=NO_CACHE, version=code_version(__name__))
def ingest_sources(cfg: IngestConfig, layout: Layout) -> IngestSummary:
    """Fetch and normalise the sources, streamed into the examples and rejects files; then a summary."""
    IngestSummary.discard(layout.ingested)
    limits = DownloadLimits(max_bytes=cfg.max_download_mb << 20, deadline_s=cfg.download_timeout_s)
    examples, rejects = layout.examples(layout.ingested), layout.rejects(layout.ingested)
    result = ingest_into([cfg.source], cfg.limit, layout.downloads, examples, rejects, cfg.rows_key, limits)
    summary = IngestSummary(
        sources=result.sources,
        examples_read=result.n_read,
        examples=result.examples,
        rejects=result.rejects,
        duplicates=result.n_duplicates,
        settings={"ingest": dataclasses.asdict(cfg)},
    )
    summary.save(layout.ingested)
    return summary
