"""Stage 3: rate the validated examples with one rater, shard by shard (each saved when done)."""

from __future__ import annotations

import time

from prefect import flow

from flows.common import setup, stage_main
from selectit.rating.models import rater_name
from selectit.ingest.records import read_example_records
from tasks.score import collect, plan, score_shard, shard_cache


@flow(name="score", flow_run_name="score-{rater}", log_prints=True)
def score_flow(params_path: str, data_dir: str, rater: str, progress: bool = True) -> dict:
    params, layout, tracker = setup(params_path, data_dir)
    cfg = params.score
    if rater not in cfg.raters:
        raise ValueError(f"rater {rater!r} is not in score.raters {cfg.raters}")
    name = rater_name(rater)
    with tracker.stage(f"score@{name}", {"score": vars(cfg), "rater": rater}) as log:
        examples = read_example_records(layout.validated / "examples.jsonl")
        cache = shard_cache(rater, cfg, layout.shard_cache)
        shards = plan(examples, cache, cfg.shard_size)
        started, texts_run = time.perf_counter(), 0
        for index, shard in enumerate(shards):
            texts_run += score_shard(shard, rater, cfg, cache, index, len(shards), progress)
        seconds = time.perf_counter() - started
        summary = collect(examples, rater, cfg, cache, layout.rater_scores(name), texts_run)
        log.metrics({
            "ratings": summary["ratings"],
            "rejects": summary["rejects"],
            "texts_run": texts_run,
            "shards_run": len(shards),
            "texts_per_second": texts_run / seconds if texts_run else None,
            **{f"mass_{k}": v for k, v in summary.get("mass", {}).items()},
            "top_is_digit_share": summary.get("top_is_digit_share"),
        })
        log.tags({"cache_key": summary["cache_key"]})
    return summary


if __name__ == "__main__":
    stage_main(score_flow, __doc__, lambda p: p.add_argument("--rater", required=True, help="one of score.raters"))
