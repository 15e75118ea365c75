"""Rate examples with every rater model and every prompt: the expensive step.

Every rating goes one way, `rate_records`: the score stage, `selectit score`
and the audit plan the shards of a records file against the rater's shard cache,
rate the missing ones in a `RaterSession`, and collect the ratings from the cache.
One rater is in memory at a time. A shard's (example, prompt) texts go through
one engine call, so batches mix prompts and lengths sort well.

A session asked for embeddings (`embedding`) keeps one per example from the same
call (the first prompt's text, pooled over the example's tokens) and saves it beside
the shard's ratings; shards rated before that gain theirs from an embedding-only
pass (`RaterSession.embed_shard`), their ratings untouched.
"""

from __future__ import annotations

import gc
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from selectit.core.catalog import rater_name
from selectit.core.errors import ModelLoadError
from selectit.core.records import Example, Reject, write_example_records
from selectit.rating.embedding import EmbeddingSpec
from selectit.rating.engine import EmbeddingRequest, TransformersRater
from selectit.rating.keys import rater_cache
from selectit.rating.models import resolve
from selectit.rating.prompts import RatingPrompts
from selectit.rating.settings import RatingSettings
from selectit.rating.shards import EmbeddingShards, ShardCache, ShardPlan, ShardRef, plan_shard_refs
from selectit.rating.texts import RatingTextEncoder, RatingTextError
from selectit.scoring import formulas as scoring
from selectit.scoring.tables import RATINGS_SCHEMA, reject_unreadable, without_examples

log = logging.getLogger(__name__)

# Below this mean probability mass on the digits a rater is mostly not answering
# with a rating; its scores are kept, and the user is told.
LOW_MASS_WARNING = 0.5


@dataclass
class RaterReport:
    name: str
    location: str
    n_params: int
    dtype: str
    device: str
    digit_token_ids: list[int]
    n_texts: int = 0  # rating texts this loaded rater has run through the model (cached ones excluded)
    n_embedded: int = 0  # texts run for their embeddings alone (shards rated before embeddings were kept)
    embedding_seconds: float = 0.0  # the time of those embedding-only passes
    hidden_size: int = 0
    n_layers: int = 0
    n_ratings: int = 0  # rating rows in the output
    n_truncated: int = 0
    seconds: float = 0.0
    texts_per_second: float = 0.0
    mass: dict[str, float] = field(default_factory=dict)
    top_is_digit_share: float = 0.0


@dataclass
class RatingRun:
    ratings: pa.Table
    rejects: list[Reject]
    raters: list[RaterReport]

    def report(self) -> list[dict]:
        return [asdict(r) for r in self.raters]


@dataclass
class LoadedRater:
    """A rater model with everything needed to rate texts for one prompt configuration."""

    rater: TransformersRater
    encoder: RatingTextEncoder
    prompts: RatingPrompts
    report: RaterReport


def load_rater(spec: str, settings: RatingSettings) -> LoadedRater:
    source = resolve(spec, settings.trust_remote_code)
    # Compiled here, at load: a session keeps this rater (and its compiled code) for all its shards.
    rater = TransformersRater(
        source, settings.dtype, settings.device, settings.trust_remote_code, compile=settings.compile
    )
    max_length = min(settings.max_length or rater.context_length, rater.context_length)
    prompts = settings.prompts()
    encoder = RatingTextEncoder(rater.tokenizer, prompts, max_length, rater.name)
    report = RaterReport(
        name=rater.name,
        location=source.location,
        n_params=rater.n_params,
        dtype=rater.dtype,
        device=rater.device_label,
        digit_token_ids=encoder.digit_token_ids(),
        hidden_size=rater.hidden_size,
        n_layers=rater.n_layers,
    )
    return LoadedRater(rater, encoder, prompts, report)


class RaterSession:
    """One rater over shards of examples, each finished shard saved in the shard cache.

    The model loads on the first shard rated and stays loaded for the rest. With `embedding`,
    each shard's embeddings are saved too (`self.embeddings`)."""

    def __init__(self, spec: str, settings: RatingSettings, cache: ShardCache, embedding: EmbeddingSpec | None = None):
        self.spec, self.settings, self.cache = spec, settings, cache
        self.name = rater_name(spec)
        self.loaded: LoadedRater | None = None
        self.embedding = embedding
        self.embeddings: EmbeddingShards | None = cache.embedding_shards(embedding.key_fields()) if embedding else None

    @property
    def report(self) -> RaterReport | None:
        """The loaded rater's identity and speed; None while no shard has been rated."""
        return self.loaded.report if self.loaded else None

    def rate_shard(self, shard: Sequence[Example], progress: bool = True, progress_desc: str | None = None) -> int:
        """Rate one shard and save it; returns the number of texts put through the model."""
        if self.loaded is None:
            self.loaded = load_rater(self.spec, self.settings)
        before = self.loaded.report.n_texts
        table, unfit, embedded = _rate(
            self.loaded, shard, self.settings.token_budget, progress, progress_desc, self.embedding
        )
        if self.embeddings is not None:  # first: the ratings file marks the shard done
            self.embeddings.write(*embedded, self._about_embeddings())
        self.cache.write(shard, table, unfit)
        return self.loaded.report.n_texts - before

    def embed_shard(self, shard: Sequence[Example], progress: bool = True, progress_desc: str | None = None) -> int:
        """Embed a shard whose ratings are already cached, and save the embeddings; returns
        the number of texts run. Examples the rater cannot read get none (they are rejects)."""
        if self.loaded is None:
            self.loaded = load_rater(self.spec, self.settings)
        loaded, spec = self.loaded, self.embedding
        prompt = loaded.prompts.prompts[spec.prompt]
        encoded = loaded.encoder.encode(shard, prompt)
        kept = [(e, t) for e, t in zip(shard, encoded, strict=True) if not isinstance(t, RatingTextError)]
        if any(t.example_span is None for _, t in kept):
            raise ModelLoadError(
                f"rater {self.name!r}: cannot tell which tokens of its rating text are the example's (its "
                "tokenizer gives no character offsets, or its chat template rewrites the request); set "
                "score.embeddings to another rater, to encoder, or to null"
            )
        start = time.perf_counter()
        matrix = loaded.rater.embed(
            [t.ids for _, t in kept],
            [t.example_span for _, t in kept],
            spec,
            self.settings.token_budget,
            progress,
            progress_desc,
        )
        loaded.report.embedding_seconds += time.perf_counter() - start
        loaded.report.n_embedded += len(kept)
        self.embeddings.write([e.id for e, _ in kept], matrix, self._about_embeddings())
        return len(kept)

    def _about_embeddings(self) -> dict:
        rater = self.loaded.rater
        return {"layer": self.embedding.layer(rater.n_layers), "of_layers": rater.n_layers}

    def embed_planned(self, shard: ShardRef, index: int, n_shards: int, progress: bool = True) -> int:
        return self.embed_shard(shard.load(), progress, f"{self.name} embeddings {index + 1}/{n_shards}")

    def rate_planned(self, shard: ShardRef, index: int, n_shards: int, progress: bool = True) -> int:
        """Rate shard `index` of a plan of `n_shards`, loading just its examples."""
        return self.rate_shard(shard.load(), progress, f"{self.name} shard {index + 1}/{n_shards}")

    def close(self) -> None:
        """Free the model before the next rater loads."""
        self.loaded = None
        gc.collect()


# Rates shard `index` of a plan of `n_shards` and saves it; returns the number of texts run.
ShardRater = Callable[[ShardRef, int, int], int]


@dataclass
class RecordsRating:
    """What rating a records file with one rater did, and where its ratings went."""

    plan: ShardPlan
    texts_run: int
    ratings: Path  # the rater's ratings of exactly the file's examples, in its order
    rows: int
    rejects: list[Reject]
    report: RaterReport | None  # None when every shard came from the cache
    embedded: int = 0  # texts run for embeddings alone (shards rated before embeddings were kept)
    embeddings: Path | None = None  # the embeddings of the rated examples, in the file's order


def rate_records(
    session: RaterSession,
    records: Path,
    out: Path,
    progress: bool = True,
    rate_shard: ShardRater | None = None,
    embeddings_out: Path | None = None,
    embed_shard: ShardRater | None = None,
) -> RecordsRating:
    """The one way examples are rated: plan the shards of `records` (a records file) that no
    finished shard in the session's cache holds, rate each (`rate_shard`, by default in this
    session), and collect the rater's ratings of the file's examples into the Parquet file `out`.

    With `embeddings_out` (a session that keeps embeddings), examples rated without one are
    embedded (`embed_shard`, by default in this session), and the embeddings of every rated
    example are collected into that embeddings file."""
    plan = plan_shard_refs(records, session.cache.done_ids(), session.settings.shard_size)
    log.info("%s", plan.describe(session.name, "in this process"))
    rate_shard = rate_shard or (lambda shard, index, n_shards: session.rate_planned(shard, index, n_shards, progress))
    texts_run = sum(rate_shard(shard, index, len(plan.shards)) for index, shard in enumerate(plan.shards))
    rows, rejects = session.cache.collect_into(records, out)
    embedded = 0
    if embeddings_out is not None:
        embed_shard = embed_shard or (
            lambda shard, index, n_shards: session.embed_planned(shard, index, n_shards, progress)
        )
        to_embed = plan_embeddings(session, records)
        embedded = sum(embed_shard(shard, index, len(to_embed.shards)) for index, shard in enumerate(to_embed.shards))
        collect_embeddings(session.cache, session.embeddings, out, embeddings_out, session.name)
    return RecordsRating(plan, texts_run, Path(out), rows, rejects, session.report, embedded, embeddings_out)


def plan_embeddings(session: RaterSession, records: Path) -> ShardPlan:
    """The rated examples of `records` that have no embedding yet, in shards (the rejected have none)."""
    done = session.embeddings.done_ids() | session.cache.rejected_ids()
    plan = plan_shard_refs(records, done, session.settings.shard_size)
    if plan.shards:
        waiting = plan.total - plan.already_rated
        log.info("%s: %d rated examples have no embedding yet (rated before they were kept)", session.name, waiting)
    return plan


def collect_embeddings(cache: ShardCache, embeddings: EmbeddingShards, ratings: Path, out: Path, rater: str) -> int:
    """The embeddings of the examples of the ratings table `ratings`, in its order, into the embeddings file `out`."""
    ids = list(dict.fromkeys(pq.read_table(ratings, columns=["example_id"])["example_id"].to_pylist()))
    metadata = {"source": "rater", "model": rater, "rating_cache_key": cache.key, **embeddings.about()}
    return embeddings.collect_into(ids, out, metadata)


def _rate(
    loaded: LoadedRater,
    examples: Sequence[Example],
    token_budget: int,
    progress: bool,
    progress_desc: str | None,
    embedding: EmbeddingSpec | None = None,
) -> tuple[pa.Table, dict[str, str], tuple[list[str], np.ndarray]]:
    """Ratings of every (example, prompt) by one rater, the examples it could not read, and
    with `embedding` the embeddings (ids, matrix) of the examples it rated."""
    texts, keys = [], []  # keys: (example index, prompt id)
    unfit: dict[str, str] = {}  # example id -> why the rater cannot read it
    for prompt_id, prompt in enumerate(loaded.prompts.prompts):
        for index, encoded in enumerate(loaded.encoder.encode(examples, prompt)):
            if isinstance(encoded, RatingTextError):
                unfit.setdefault(examples[index].id, f"rater {loaded.rater.name!r}: {encoded}")
            else:
                texts.append(encoded)
                keys.append((index, prompt_id))
    request = None
    if embedding is not None:
        spans = [t.example_span if p == embedding.prompt else None for t, (_, p) in zip(texts, keys, strict=True)]
        request = EmbeddingRequest(spans, embedding)
    start = time.perf_counter()
    digits = loaded.rater.rate(
        [t.ids for t in texts], loaded.report.digit_token_ids, token_budget, progress, progress_desc, request
    )
    loaded.report.seconds += time.perf_counter() - start
    loaded.report.n_texts += len(texts)
    table = _ratings_table(examples, keys, texts, digits, loaded.rater, loaded.prompts)
    embedded: tuple[list[str], np.ndarray] = ([], np.zeros((0, loaded.rater.hidden_size), dtype=np.float32))
    if request is not None:
        rows = [i for i, span in enumerate(request.spans) if span is not None and examples[keys[i][0]].id not in unfit]
        embedded = ([examples[keys[i][0]].id for i in rows], digits.embeddings[rows])
    return without_examples(table, unfit), unfit, embedded


def rate_examples(
    examples: Sequence[Example], raters: Sequence[str], settings: RatingSettings, cache_root: Path, progress: bool
) -> RatingRun:
    """Every rater over examples held in memory, one rater loaded at a time, through `rate_records`:
    the examples are written to a records file for the run, as the score stage reads its own."""
    tables, reports, unfit = [], [], {}
    by_position = {(e.source, e.row): e.id for e in examples}
    with tempfile.TemporaryDirectory(prefix="selectit-rating-") as folder:
        records = Path(folder) / "examples.jsonl"
        write_example_records(examples, records)
        for spec in raters:
            session = RaterSession(spec, settings, rater_cache(Path(cache_root), spec, settings))
            try:
                rated = rate_records(session, records, Path(folder) / "ratings.parquet", progress)
            finally:
                session.close()
            table = pq.read_table(rated.ratings, schema=RATINGS_SCHEMA)
            for reject in rated.rejects:
                unfit.setdefault(by_position[(reject.source, reject.row)], reject.reason)
            if rated.report is not None:
                summarise(rated.report, table)
                reports.append(rated.report)
            tables.append(table)
    ratings, rejects = reject_unreadable(examples, pa.concat_tables(tables), unfit)
    return RatingRun(ratings, rejects, reports)


def _ratings_table(examples, keys, texts, digits, rater, prompts: RatingPrompts) -> pa.Table:
    probs = digits.probs
    n = len(keys)
    return pa.table(
        {
            "example_id": [examples[i].id for i, _ in keys],
            "model": [rater.name] * n,
            "model_params": np.full(n, rater.n_params, dtype=np.int64),
            "prompt_id": np.array([p for _, p in keys], dtype=np.int16),
            "prompt_version": [prompts.version] * n,
            "template": [prompts.template] * n,
            "k": np.full(n, prompts.k, dtype=np.int8),
            "probs": pa.FixedSizeListArray.from_arrays(probs.reshape(-1), prompts.k).cast(pa.list_(pa.float64())),
            "mass": probs.sum(axis=1),
            "top_is_digit": digits.top_is_digit,
            # The paper's token-level score, as rated; `aggregate` recomputes the token
            # level from `probs` as aggregate.token_score and authors_softmax say.
            "token_score": scoring.token_scores(probs),
            "n_tokens": np.array([len(t.ids) for t in texts], dtype=np.int32),
            "truncated": np.array([t.truncated for t in texts], dtype=bool),
        },
        schema=RATINGS_SCHEMA,
    )


# The columns rating_stats reads: a stage can read just these of a large ratings table.
STATS_COLUMNS = ("model", "mass", "truncated", "top_is_digit")


def rating_stats(table: pa.Table) -> dict:
    """Digit-mass statistics of ratings; warns when the rater rarely answers with a digit."""
    mass = table["mass"].to_numpy()
    stats = {
        "ratings": table.num_rows,
        "truncated": int(np.sum(table["truncated"].to_numpy(zero_copy_only=False))),
    }
    if not len(mass):
        return stats
    stats["mass"] = {
        "mean": float(mass.mean()),
        "min": float(mass.min()),
        "p05": float(np.quantile(mass, 0.05)),
        "median": float(np.median(mass)),
    }
    stats["top_is_digit_share"] = float(table["top_is_digit"].to_numpy(zero_copy_only=False).mean())
    if mass.mean() < LOW_MASS_WARNING:
        log.warning(
            "rater %s puts only %.0f%% of its next-token probability on the rating digits "
            "(top token is a digit for %.0f%% of texts); its ratings carry little signal. "
            "Try another template or cue.",
            table["model"][0].as_py(),
            100 * mass.mean(),
            100 * stats["top_is_digit_share"],
        )
    return stats


def summarise(report: RaterReport, table: pa.Table) -> None:
    """Fill a rater's report with the statistics of its ratings."""
    stats = rating_stats(table)
    report.n_ratings = stats["ratings"]
    report.n_truncated = stats["truncated"]
    report.texts_per_second = report.n_texts / report.seconds if report.seconds else 0.0
    report.mass = stats.get("mass", {})
    report.top_is_digit_share = stats.get("top_is_digit_share", 0.0)
