"""Scoring tasks: one rater over shards of the validated examples, each shard saved when done."""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import ScoreConfig
from selectit.rating.rate import LoadedRater, load_rater, rate_with, rating_prompts, rating_stats
from selectit.rating.models import resolve
from selectit.ingest.records import Example, write_rejects
from selectit.rating.shards import ShardCache, plan_shards
from selectit.scoring.tables import write_parquet
from tasks.common import write_json

log = logging.getLogger(__name__)

# One rater stays loaded per process, so consecutive shards of the same rater
# do not reload it (a Prefect worker or a DVC stage process scores many shards).
_loaded: dict[str, LoadedRater] = {}


def _key(spec: str, cfg: ScoreConfig) -> str:
    return json.dumps([spec, dataclasses.asdict(cfg)], sort_keys=True)


def _rater(spec: str, cfg: ScoreConfig) -> LoadedRater:
    key = _key(spec, cfg)
    if key not in _loaded:
        _loaded.clear()
        gc.collect()
        _loaded[key] = load_rater(spec, cfg, rating_prompts(cfg))
    return _loaded[key]


def shard_cache(spec: str, cfg: ScoreConfig, root: Path) -> ShardCache:
    source = resolve(spec, cfg.trust_remote_code)
    prompts = rating_prompts(cfg)
    key = {
        "model": source.name,
        "location": source.location,
        "prompt_version": prompts.version,
        "template": prompts.template,
        "k": prompts.k,
        "dtype": cfg.dtype,
        "max_length": cfg.max_length,
    }
    return ShardCache(root, source.name, key)


@task(name="plan-shards", cache_policy=NO_CACHE)
def plan(examples: Sequence[Example], cache: ShardCache, shard_size: int) -> list[list[Example]]:
    shards = plan_shards(examples, cache.done_ids(), shard_size)
    log.info("%s: %d of %d examples already rated; %d shards to score",
             cache.folder.parent.name, len(examples) - sum(map(len, shards)), len(examples), len(shards))
    return shards


@task(name="score-shard", cache_policy=NO_CACHE, task_run_name="score-{spec}-shard-{index}")
def score_shard(shard: Sequence[Example], spec: str, cfg: ScoreConfig, cache: ShardCache, index: int,
                n_shards: int, progress: bool = True) -> int:
    """Rate one shard with one rater and save it; returns the number of texts run."""
    loaded = _rater(spec, cfg)
    before = loaded.report.n_texts
    desc = f"{loaded.rater.name} shard {index + 1}/{n_shards}"
    table, unfit = rate_with(loaded, shard, cfg.token_budget, progress, desc)
    cache.write(shard, table, unfit)
    return loaded.report.n_texts - before


@task(name="collect-ratings", cache_policy=NO_CACHE)
def collect(examples: Sequence[Example], spec: str, cfg: ScoreConfig, cache: ShardCache, out: Path,
            texts_run: int) -> dict:
    """The rater's ratings of exactly these examples, from the cache, as one table."""
    ratings, rejects = cache.collect(examples)
    write_parquet(ratings, out / "ratings.parquet")
    write_rejects(rejects, out / "rejects.jsonl")
    loaded = _loaded.get(_key(spec, cfg))
    summary = {"rater": cache.folder.parent.name, "cache_key": cache.key, **rating_stats(ratings),
               "rejects": len(rejects), "texts_run": texts_run, "params": {"score": vars(cfg)}}
    if loaded is not None:  # this process ran the model: add its identity and speed
        report = loaded.report
        summary.update(n_params=report.n_params, dtype=report.dtype, device=report.device,
                       digit_token_ids=report.digit_token_ids, seconds=report.seconds,
                       texts_per_second=report.n_texts / report.seconds if report.seconds else None)
    write_json(out / "summary.json", summary)
    return summary
