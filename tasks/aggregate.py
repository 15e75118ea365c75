"""Tasks of the aggregate stage: check the rating tables, score every example, and write
the embeddings of exactly the scored examples (data/embeddings) from score.embeddings' source."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.config import AggregateConfig, ScoreConfig
from selectit.core.catalog import rater_name
from selectit.core.embeddings import copy_embeddings, read_embeddings_metadata
from selectit.core.layout import Layout
from selectit.core.records import iter_example_record_shards
from selectit.provenance import code_version
from selectit.scoring.run import aggregate_folder
from selectit.scoring.tables import read_scores
from selectit.summaries import AggregateSummary

VERSION = code_version(__name__)


@task(name="aggregate-scores", cache_policy=NO_CACHE, version=VERSION)
def aggregate_scores(raters: list[str], cfg: AggregateConfig, num_prompts: int, layout: Layout) -> AggregateSummary:
    """See `aggregate_folder`; the flow saves the summary once the embeddings are written too."""
    return aggregate_folder(raters, cfg, num_prompts, layout)


@task(name="write-embeddings", cache_policy=NO_CACHE, version=VERSION)
def write_scored_embeddings(score: ScoreConfig, layout: Layout) -> dict | None:
    """data/embeddings: one embedding per scored example (the scores table's ids, in its order),
    from the rater score.embeddings names (its score stage kept them) or from the encoder
    (run here, over just those examples, each shard cached). None, and no file, when off."""
    out = layout.embeddings
    out.unlink(missing_ok=True)  # never an earlier run's file beside this run's scores
    # Both are the stage's DVC outputs, so they exist even where nothing goes in them.
    out.parent.mkdir(parents=True, exist_ok=True)
    layout.embedding_cache.mkdir(parents=True, exist_ok=True)
    if score.embedding_source is None:
        return None
    ids = read_scores(layout.scores_table)["example_id"].to_pylist()
    if score.embedding_rater is not None:
        copy_embeddings(layout.rater_embeddings(rater_name(score.embedding_rater)), ids, out, {})
    else:
        # torch and transformers load only when an encoder runs: the rater source needs neither.
        from selectit.rating.dtypes import resolve_device  # torch
        from selectit.rating.encoder import SentenceEncoder, embed_examples  # torch, transformers

        encoder = SentenceEncoder(score.embedding_encoder, str(resolve_device(score.device)))
        wanted = set(ids)
        shards = (
            [e for e in batch if e.id in wanted]
            for batch in iter_example_record_shards(layout.examples(layout.validated), score.shard_size)
        )
        cache = embed_examples(encoder, shards, layout.embedding_cache)
        cache.collect_into(ids, out, cache.about())
    return {**read_embeddings_metadata(out), "rows": len(ids)}
