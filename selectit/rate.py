"""Rate examples with every rater model and every prompt: the expensive step.

One rater is in memory at a time. All of a rater's (example, prompt) texts go
through one `rate` call, so batches mix prompts and lengths sort well.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa

from selectit import scoring
from selectit.config import ScoreConfig
from selectit.prompts import RatingPrompts
from selectit.raters.loading import resolve
from selectit.raters.transformers_rater import TransformersRater
from selectit.rating_texts import RatingTextEncoder, RatingTextError
from selectit.records import Example, Reject
from selectit.tables import RATINGS_SCHEMA

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
    n_texts: int = 0
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
    return RatingPrompts.from_set(cfg.prompt_set, cfg.num_prompts, cfg.template, cfg.cue, cfg.k)


def rate_examples(examples: Sequence[Example], cfg: ScoreConfig, progress: bool = True) -> RatingRun:
    prompts = rating_prompts(cfg)
    tables, reports = [], []
    unfit: dict[str, str] = {}  # example id -> why no rater could read it
    for spec in cfg.raters:
        source = resolve(spec, cfg.trust_remote_code)
        rater = TransformersRater(source, cfg.dtype, cfg.device, cfg.trust_remote_code)
        max_length = min(cfg.max_length or rater.context_length, rater.context_length)
        encoder = RatingTextEncoder(rater.tokenizer, prompts, max_length, rater.name)
        report = RaterReport(
            name=rater.name,
            location=source.location,
            n_params=rater.n_params,
            dtype=rater.dtype,
            device=str(rater.device),
            digit_token_ids=encoder.digit_token_ids(),
        )
        texts, keys = [], []  # keys: (example index, prompt id)
        for prompt_id, prompt in enumerate(prompts.prompts):
            for index, encoded in enumerate(encoder.encode(examples, prompt)):
                if isinstance(encoded, RatingTextError):
                    unfit.setdefault(examples[index].id, f"rater {rater.name!r}: {encoded}")
                else:
                    texts.append(encoded)
                    keys.append((index, prompt_id))
        start = time.perf_counter()
        digits = rater.rate([t.ids for t in texts], report.digit_token_ids, cfg.token_budget, progress)
        report.seconds = time.perf_counter() - start
        tables.append(_ratings_table(examples, keys, texts, digits, rater, prompts))
        _summarise(report, tables[-1], digits.top_is_digit)
        reports.append(report)
        del rater
        gc.collect()  # free one rater before the next loads

    ratings = pa.concat_tables(tables)
    if unfit:
        keep = pa.array([e not in unfit for e in ratings["example_id"].to_pylist()])
        ratings = ratings.filter(keep)
    rejects = [
        Reject(source=e.source, row=e.row, line=None, reason=unfit[e.id], raw=e.raw)
        for e in examples
        if e.id in unfit
    ]
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
            # The paper's token-level score; `aggregate` recomputes it if the
            # authors' extra softmax is switched on.
            "token_score": scoring.token_scores(probs),
            "n_tokens": np.array([len(t.ids) for t in texts], dtype=np.int32),
            "truncated": np.array([t.truncated for t in texts], dtype=bool),
        },
        schema=RATINGS_SCHEMA,
    )


def _summarise(report: RaterReport, table: pa.Table, top_is_digit: np.ndarray) -> None:
    mass = table["mass"].to_numpy()
    report.n_texts = table.num_rows
    report.n_truncated = int(np.sum(table["truncated"].to_numpy(zero_copy_only=False)))
    report.texts_per_second = report.n_texts / report.seconds if report.seconds else 0.0
    if len(mass):
        report.mass = {
            "mean": float(mass.mean()),
            "min": float(mass.min()),
            "p05": float(np.quantile(mass, 0.05)),
            "median": float(np.median(mass)),
        }
        report.top_is_digit_share = float(top_is_digit.mean())
        if mass.mean() < LOW_MASS_WARNING:
            log.warning(
                "rater %s puts only %.0f%% of its next-token probability on the rating digits "
                "(top token is a digit for %.0f%% of texts); its ratings carry little signal. "
                "Try another template or cue.",
                report.name, 100 * mass.mean(), 100 * report.top_is_digit_share,
            )
