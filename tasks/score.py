"""Tasks of the score stage: one rater over shards of the validated examples, each
shard saved in the shard cache as soon as it is done."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import ScoreConfig
from selectit.core.catalog import rater_name
from selectit.core.embeddings import read_embeddings_metadata
from selectit.core.layout import Layout
from selectit.core.records import Example, Reject, write_rejects
from selectit.provenance import code_version
from selectit.rating.embedding import RATER_EMBEDDING
from selectit.rating.rate import (
    STATS_COLUMNS,
    RaterReport,
    RaterSession,
    RecordsRating,
    collect_embeddings,
    rating_stats,
)
from selectit.rating.shards import ShardCache, ShardRef, plan_shard_refs
from selectit.summaries import ScoreSummary

log = logging.getLogger(__name__)
VERSION = code_version(__name__)


@task(name="plan-shards", cache_policy=NO_CACHE, version=VERSION)
def plan(cache: ShardCache, records: Path, shard_size: int, rater: str, where: str) -> list[ShardRef]:
    """The shards of `records` no finished shard in the cache holds, for Ray's replicas, as
    references into the file: a plan of any size fits in memory, and each shard loads just its
    own examples. `where` says what rates them, for the line this prints."""
    planned = plan_shard_refs(records, cache.done_ids(), shard_size)
    print(planned.describe(rater, where))
    return planned.shards


@task(name="score-shard", cache_policy=NO_CACHE, version=VERSION, task_run_name="score-{rater}-shard-{index}")
def score_shard(session: RaterSession, shard: ShardRef, rater: str, index: int, n_shards: int, progress: bool) -> int:
    """Rate one shard with the session's rater and save it; returns the number of texts run."""
    return session.rate_planned(shard, index, n_shards, progress)


@task(name="embed-shard", cache_policy=NO_CACHE, version=VERSION, task_run_name="embed-{rater}-shard-{index}")
def embed_shard(session: RaterSession, shard: ShardRef, rater: str, index: int, n_shards: int, progress: bool) -> int:
    """Embed one shard whose ratings were cached before embeddings were kept; returns the texts run."""
    return session.embed_planned(shard, index, n_shards, progress)


@task(name="score-shard-on-ray", cache_policy=NO_CACHE, version=VERSION, task_run_name="score-{rater}-shard-{index}")
def score_shard_on_replica(replica, shard: Sequence[Example], rater: str, index: int, n_shards: int) -> int:
    """Rate one shard on a Ray actor holding the rater (selectit.rating.distributed) and save it.

    This task runs in a Ray worker, asking for no CPU of its own: the actor does the
    work. Ray re-runs the call on a restarted actor if the one rating it dies."""
    import ray

    texts = ray.get(replica.rate_shard.remote(shard))
    log.info("%s shard %d/%d rated (%d texts)", rater, index + 1, n_shards, texts)
    return texts


@task(name="collect-ratings", cache_policy=NO_CACHE, version=VERSION)
def collect(
    cache: ShardCache,
    cfg: ScoreConfig,
    report: RaterReport | None,
    records: Path,
    layout: Layout,
    rater: str,
    texts_run: int,
    shards_run: int,
    embedded: int = 0,
) -> ScoreSummary:
    """The rater's ratings of exactly the examples of `records`, from the cache its Ray replicas
    wrote, as one table written batch by batch (memory holds one batch of probabilities, not
    the dataset's), its embeddings where it keeps them, and the stage's summary.

    `report` is the rater's identity and speed, None when every shard came from the cache."""
    _, rejects = cache.collect_into(records, layout.ratings_table(rater))
    if _keeps_embeddings(cfg, rater):
        shards = cache.embedding_shards(RATER_EMBEDDING.key_fields())
        collect_embeddings(cache, shards, layout.ratings_table(rater), layout.rater_embeddings(rater), rater)
    return _summary(cache, cfg, report, layout, rater, rejects, texts_run, shards_run, embedded)


@task(name="summarise-ratings", cache_policy=NO_CACHE, version=VERSION)
def summarise(cache: ShardCache, cfg: ScoreConfig, rated: RecordsRating, layout: Layout, rater: str) -> ScoreSummary:
    """The stage's summary of the ratings `rate_records` collected into the rater's table."""
    return _summary(
        cache, cfg, rated.report, layout, rater, rated.rejects, rated.texts_run, len(rated.plan.shards), rated.embedded
    )


def _keeps_embeddings(cfg: ScoreConfig, rater: str) -> bool:
    return cfg.embedding_rater is not None and rater_name(cfg.embedding_rater) == rater


def _summary(
    cache: ShardCache,
    cfg: ScoreConfig,
    report: RaterReport | None,
    layout: Layout,
    rater: str,
    rejects: list[Reject],
    texts_run: int,
    shards_run: int,
    embedded: int = 0,
) -> ScoreSummary:
    """Write the rater's rejects and the summary of its ratings table, and return the summary."""
    out = layout.rater_scores(rater)
    write_rejects(rejects, layout.rejects(out))
    stats = rating_stats(pq.read_table(layout.ratings_table(rater), columns=list(STATS_COLUMNS)))
    summary = ScoreSummary(
        rater=rater,
        cache_key=cache.key,
        ratings=stats["ratings"],
        truncated=stats["truncated"],
        rejects=len(rejects),
        texts_run=texts_run,
        shards_run=shards_run,
        mass=stats.get("mass", {}),
        top_is_digit_share=stats.get("top_is_digit_share"),
        embeddings=_embeddings_record(layout, rater, embedded) if _keeps_embeddings(cfg, rater) else None,
        settings={"score": dataclasses.asdict(cfg)},
    )
    if report is not None:  # this run loaded the model: record its identity and speed
        summary = dataclasses.replace(
            summary,
            n_params=report.n_params,
            dtype=report.dtype,
            device=report.device,
            digit_token_ids=report.digit_token_ids,
            seconds=report.seconds,
            texts_per_second=report.n_texts / report.seconds if report.seconds else None,
        )
    summary.save(out)
    return summary


def _embeddings_record(layout: Layout, rater: str, embedded: int) -> dict:
    """What the rater's embeddings file holds, for the summary and MLflow."""
    path = layout.rater_embeddings(rater)
    return {**read_embeddings_metadata(path), "rows": pq.read_metadata(path).num_rows, "embedded_alone": embedded}
