"""Tasks of the score stage: one rater over shards of the validated examples, each
shard saved in the shard cache as soon as it is done."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.ingest.records import Example, write_rejects
from selectit.layout import Layout
from selectit.provenance import code_version
from selectit.rating.rate import RaterSession, rating_stats
from selectit.scoring.tables import write_parquet
from selectit.summaries import ScoreSummary

log = logging.getLogger(__name__)
VERSION = code_version(__name__)


@task(name="plan-shards", cache_policy=NO_CACHE, version=VERSION)
def plan(session: RaterSession, examples: Sequence[Example]) -> list[list[Example]]:
    shards = session.plan(examples)
    log.info(
        "%s: %d of %d examples already rated; %d shards to score",
        session.name,
        len(examples) - sum(map(len, shards)),
        len(examples),
        len(shards),
    )
    return shards


@task(name="score-shard", cache_policy=NO_CACHE, version=VERSION, task_run_name="score-{rater}-shard-{index}")
def score_shard(
    session: RaterSession, shard: Sequence[Example], rater: str, index: int, n_shards: int, progress: bool = True
) -> int:
    """Rate one shard with the session's rater and save it; returns the number of texts run."""
    return session.rate_shard(shard, progress, f"{rater} shard {index + 1}/{n_shards}")


@task(name="collect-ratings", cache_policy=NO_CACHE, version=VERSION)
def collect(
    session: RaterSession, examples: Sequence[Example], layout: Layout, rater: str, texts_run: int, shards_run: int
) -> ScoreSummary:
    """The rater's ratings of exactly these examples, from the cache, as one table."""
    ratings, rejects = session.collect(examples)
    out = layout.rater_scores(rater)
    write_parquet(ratings, layout.ratings_table(rater))
    write_rejects(rejects, layout.rejects(out))
    stats = rating_stats(ratings)
    summary = ScoreSummary(
        rater=rater,
        cache_key=session.cache.key,
        ratings=stats["ratings"],
        truncated=stats["truncated"],
        rejects=len(rejects),
        texts_run=texts_run,
        shards_run=shards_run,
        mass=stats.get("mass", {}),
        top_is_digit_share=stats.get("top_is_digit_share"),
        settings={"score": dataclasses.asdict(session.cfg)},
    )
    if session.loaded is not None:  # this run loaded the model: record its identity and speed
        report = session.loaded.report
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
