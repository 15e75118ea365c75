"""Rate examples with every rater model and every prompt: the expensive step.

One rater is in memory at a time. A shard's (example, prompt) texts go through
one engine call, so batches mix prompts and lengths sort well.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from selectit.config import ScoreConfig
from selectit.core.catalog import rater_name
from selectit.core.records import Example, Reject
from selectit.rating.engine import TransformersRater
from selectit.rating.models import resolve
from selectit.rating.prompts import RatingPrompts
from selectit.rating.shards import ShardCache, plan_shards, rater_cache
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


def rating_prompts(cfg: ScoreConfig) -> RatingPrompts:
    return RatingPrompts.from_set(cfg.prompt_set, cfg.num_prompts, cfg.template, cfg.cue, cfg.k, cfg.layout)


@dataclass
class LoadedRater:
    """A rater model with everything needed to rate texts for one prompt configuration."""

    rater: TransformersRater
    encoder: RatingTextEncoder
    prompts: RatingPrompts
    report: RaterReport


def load_rater(spec: str, cfg: ScoreConfig, prompts: RatingPrompts) -> LoadedRater:
    source = resolve(spec, cfg.trust_remote_code)
    # Compiled here, at load: a session keeps this rater (and its compiled code) for all its shards.
    rater = TransformersRater(source, cfg.dtype, cfg.device, cfg.trust_remote_code, compile=cfg.compile)
    max_length = min(cfg.max_length or rater.context_length, rater.context_length)
    encoder = RatingTextEncoder(rater.tokenizer, prompts, max_length, rater.name)
    report = RaterReport(
        name=rater.name,
        location=source.location,
        n_params=rater.n_params,
        dtype=rater.dtype,
        device=rater.device_label,
        digit_token_ids=encoder.digit_token_ids(),
    )
    return LoadedRater(rater, encoder, prompts, report)


class RaterSession:
    """One rater over shards of examples, each finished shard saved in the shard cache.

    Both the `selectit score` command and the pipeline's score stage rate through
    this: rate each shard no finished shard holds (the model loads on the first and
    stays loaded for the rest), then collect the ratings of exactly the examples
    asked for from the cache."""

    def __init__(self, spec: str, cfg: ScoreConfig, cache: ShardCache):
        self.spec, self.cfg, self.cache = spec, cfg, cache
        self.name = rater_name(spec)
        self.loaded: LoadedRater | None = None

    def rate_shard(self, shard: Sequence[Example], progress: bool = True, progress_desc: str | None = None) -> int:
        """Rate one shard and save it; returns the number of texts put through the model."""
        if self.loaded is None:
            self.loaded = load_rater(self.spec, self.cfg, rating_prompts(self.cfg))
        before = self.loaded.report.n_texts
        table, unfit = _rate(self.loaded, shard, self.cfg.token_budget, progress, progress_desc)
        self.cache.write(shard, table, unfit)
        return self.loaded.report.n_texts - before

    def rate_all(self, examples: Sequence[Example], progress: bool = True) -> None:
        shards = plan_shards(examples, self.cache.done_ids(), self.cfg.shard_size)
        for index, shard in enumerate(shards):
            self.rate_shard(shard, progress, f"{self.name} shard {index + 1}/{len(shards)}")

    def collect(self, examples: Sequence[Example]) -> tuple[pa.Table, list[Reject]]:
        """This rater's ratings of exactly these examples, and the ones it could not read."""
        return self.cache.collect(examples)

    def close(self) -> None:
        """Free the model before the next rater loads."""
        self.loaded = None
        gc.collect()


def _rate(
    loaded: LoadedRater, examples: Sequence[Example], token_budget: int, progress: bool, progress_desc: str | None
) -> tuple[pa.Table, dict[str, str]]:
    """Ratings of every (example, prompt) by one rater, and the examples it could not read."""
    texts, keys = [], []  # keys: (example index, prompt id)
    unfit: dict[str, str] = {}  # example id -> why the rater cannot read it
    for prompt_id, prompt in enumerate(loaded.prompts.prompts):
        for index, encoded in enumerate(loaded.encoder.encode(examples, prompt)):
            if isinstance(encoded, RatingTextError):
                unfit.setdefault(examples[index].id, f"rater {loaded.rater.name!r}: {encoded}")
            else:
                texts.append(encoded)
                keys.append((index, prompt_id))
    start = time.perf_counter()
    digits = loaded.rater.rate(
        [t.ids for t in texts], loaded.report.digit_token_ids, token_budget, progress, progress_desc
    )
    loaded.report.seconds += time.perf_counter() - start
    loaded.report.n_texts += len(texts)
    table = _ratings_table(examples, keys, texts, digits, loaded.rater, loaded.prompts)
    return without_examples(table, unfit), unfit


def rate_examples(examples: Sequence[Example], cfg: ScoreConfig, cache_root: Path, progress: bool = True) -> RatingRun:
    """Every rater over every example, one rater in memory at a time, through the shard cache."""
    tables, reports, unfit = [], [], {}
    by_position = {(e.source, e.row): e.id for e in examples}
    for spec in cfg.raters:
        session = RaterSession(spec, cfg, rater_cache(cache_root, spec, cfg))
        session.rate_all(examples, progress)
        table, rejects = session.collect(examples)
        for reject in rejects:
            unfit.setdefault(by_position[(reject.source, reject.row)], reject.reason)
        if session.loaded is not None:  # None when every shard came from the cache
            summarise(session.loaded.report, table)
            reports.append(session.loaded.report)
        tables.append(table)
        session.close()
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
