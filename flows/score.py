"""Stage 3: rate the validated examples with one rater, shard by shard (each saved when done).

Shards are rated in this process, or on Ray when params.yaml's `ray.address` names a
cluster or `local` (docs/getting-started/ray.md): the same shard cache and tables either way."""

# No `from __future__ import annotations`: Prefect builds a pydantic model of the flow's
# parameters, and a served deployment cannot resolve RunContext from a string annotation.

import contextlib
import contextvars
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prefect import flow
from prefect.futures import PrefectFuture
from tqdm.auto import tqdm

from flows.common import stage_main, tracked_stage
from flows.prefect_runtime import api_url_for_workers, record_crash
from selectit.context import RunContext
from selectit.core.catalog import rater_name
from selectit.core.errors import ParamsError
from selectit.core.stages import Stage, stage_id
from selectit.provenance import code_version
from selectit.rating.distributed import RaterPool, ray_runtime
from selectit.rating.embedding import RATER_EMBEDDING
from selectit.rating.keys import rater_cache
from selectit.rating.rate import RaterSession, rate_records
from selectit.rating.shards import plan_shard_refs
from selectit.rating_params import rating_settings, ray_settings
from selectit.stages import load_current
from selectit.summaries import ScoreSummary, ledger_line
from tasks.score import collect, embed_shard, plan, score_shard, score_shard_on_replica, summarise


@flow(name=Stage.SCORE.value, flow_run_name="score-{rater}", log_prints=True, version=code_version(__name__))
def score_flow(context: RunContext, rater: str) -> ScoreSummary:
    """`rater` is one entry of score.raters, as written there (DVC's stage is `score@<rater>`)."""
    cfg, layout = context.params.score, context.layout
    if rater not in cfg.raters:
        raise ParamsError(f"{context.params_path}: score.raters: {rater!r} is not one of {cfg.raters}")
    name = rater_name(rater)
    settings = {"score": dataclasses.asdict(cfg), "rater": rater}
    with tracked_stage(
        context, stage_id(Stage.SCORE, name), settings, __name__, dvc_stage=stage_id(Stage.SCORE, rater)
    ) as log:
        ScoreSummary.discard(layout.rater_scores(name))
        if cfg.embedding_rater != rater:  # an earlier run's, when this rater's embeddings were kept
            layout.rater_embeddings(name).unlink(missing_ok=True)
        load_current(Stage.VALIDATE, layout, context.params)
        # Read shard by shard: the stage holds a plan of byte offsets, never all examples.
        records = layout.examples(layout.validated)
        rate = _rate_on_ray if context.params.ray.enabled else _rate_here
        summary = rate(context, rater, name, records)
        log.metrics(summary.headline(), headline=True)
        log.tags({"cache_key": summary.cache_key})
        if summary.embeddings:
            log.tags({f"embeddings.{k}": v for k, v in summary.embeddings.items()})
        rated = summary.ratings // context.params.score.num_prompts
        ledger = layout.rejects(layout.rater_scores(name))
        print(ledger_line(stage_id(Stage.SCORE, name), rated + summary.rejects, rated, ledger, "rated"))
    return summary


def _rate_here(context: RunContext, rater: str, name: str, records: Path) -> ScoreSummary:
    cfg, layout = context.params.score, context.layout
    rating = rating_settings(cfg)
    embedding = RATER_EMBEDDING if cfg.embedding_rater == rater else None
    # The session keeps the model loaded from the first shard to the last; each shard is a task.
    session = RaterSession(rater, rating, rater_cache(layout.shard_cache, rater, rating), embedding)
    try:
        rated = rate_records(
            session,
            records,
            layout.ratings_table(name),
            context.progress,
            lambda shard, index, n_shards: score_shard(session, shard, name, index, n_shards, context.progress),
            layout.rater_embeddings(name) if embedding else None,
            lambda shard, index, n_shards: embed_shard(session, shard, name, index, n_shards, context.progress),
        )
        return summarise(session.cache, cfg, rated, layout, name)
    finally:
        session.close()


def _rate_on_ray(context: RunContext, rater: str, name: str, records: Path) -> ScoreSummary:
    """Shards as Prefect tasks on Ray workers (prefect-ray), each handing its shard to one
    of the rater's replicas (Ray actors that keep the model loaded)."""
    from prefect_ray.context import remote_options  # imports ray

    cfg, ray_cfg, layout = context.params.score, context.params.ray, context.layout
    embedding = RATER_EMBEDDING if cfg.embedding_rater == rater else None
    pool = RaterPool.start(rater, name, rating_settings(cfg), ray_settings(ray_cfg), layout.shard_cache, embedding)
    try:
        shards = plan(pool.cache, records, cfg.shard_size, name, f"on {len(pool.replicas)} replica(s)")
        # A task only waits on its actor, so it reserves no CPU; a worker lost while waiting is
        # re-run by Ray (max_retries), and the actor call is retried on the restarted actor.
        # At most two shards per replica are in flight (one rating, one queued at the actor):
        # each waiting task holds a Ray worker process, and a run has thousands of shards.
        # Each shard's examples are read here and sent with it, so workers on other nodes
        # need no access to this machine's files (only to the shared cache).
        in_flight = 2 * len(pool.replicas)
        futures: list[PrefectFuture] = []
        texts_run = 0
        with tqdm(total=len(shards), desc=f"{name} shards", unit="shard", disable=not context.progress) as bar:
            for index, shard in enumerate(shards):
                if index >= in_flight:
                    texts_run += _result_recorded(futures[index - in_flight])
                    bar.update(1)
                with remote_options(num_cpus=0, max_retries=ray_cfg.retries):
                    futures.append(
                        score_shard_on_replica.submit(pool.replica_for(index), shard.load(), name, index, len(shards))
                    )
            for future in futures[max(0, len(shards) - in_flight) :]:
                texts_run += _result_recorded(future)
                bar.update(1)
        embedded = pool.fill_embeddings(records) if embedding else 0
        return collect(pool.cache, cfg, pool.report(), records, layout, name, texts_run, len(shards), embedded)
    finally:
        pool.stop()


def _result_recorded(future: PrefectFuture) -> int:
    """The task's result; if Ray gave up on it (its worker lost more often than Ray
    retries), its Prefect task run is marked Crashed rather than left Running."""
    future.wait()
    if future.state.is_crashed():
        record_crash(future)
    return future.result()


def score_raters(context: RunContext) -> dict[str, ScoreSummary]:
    """Every rater's score stage. On Ray they run at the same time (each with its own
    replicas, as resources allow); in this process one after the other."""
    raters = context.params.score.raters
    if not context.params.ray.enabled or _all_cached(context, raters):
        return {rater: score_flow(context.without_ray(), rater) for rater in raters}
    from prefect_ray import RayTaskRunner  # imports ray

    on_ray = score_flow.with_options(task_runner=RayTaskRunner())  # joins the Ray that ray_runtime connects
    with _ray(context), ThreadPoolExecutor(len(raters)) as pool:
        # Each thread runs its flow in a copy of this context, so it nests under the pipeline's run.
        futures = {r: pool.submit(contextvars.copy_context().run, on_ray, context, r) for r in raters}
        return {rater: future.result() for rater, future in futures.items()}


def score_stage(context: RunContext, rater: str) -> ScoreSummary:
    """One rater's score stage, on Ray when params ask for it (`python -m flows.score`)."""
    if not context.params.ray.enabled or _all_cached(context, [rater]):
        return score_flow(context.without_ray(), rater)
    from prefect_ray import RayTaskRunner  # imports ray

    with _ray(context):
        return score_flow.with_options(task_runner=RayTaskRunner())(context, rater)


def _all_cached(context: RunContext, raters: list[str]) -> bool:
    """Whether the shard cache already holds every shard of these raters: then Ray is not
    started or joined (a cluster that is down does not stop a run with nothing to rate)."""
    if not context.params.ray.enabled:
        return False
    settings, records = rating_settings(context.params.score), context.layout.examples(context.layout.validated)
    if not records.is_file():  # the stage then says which stage to run first
        return False
    for rater in raters:
        cache = rater_cache(context.layout.shard_cache, rater, settings)
        if plan_shard_refs(records, cache.done_ids(), context.params.score.shard_size).shards:
            return False
    print("every shard is in the cache: nothing to rate, Ray is not used")
    return True


def _ray(context: RunContext) -> contextlib.AbstractContextManager[None]:
    """Ray for this run; its workers report task states to the Prefect server this run uses."""
    ray_cfg = ray_settings(context.params.ray)
    return ray_runtime(ray_cfg, context.project_root, api_url_for_workers(ray_cfg.prefect_api_url))


if __name__ == "__main__":
    stage_main(
        score_flow,
        __doc__,
        lambda p: p.add_argument("--rater", required=True, help="one of score.raters"),
        runner=score_stage,
    )
