"""Typed settings read from params.yaml, the single source of truth for every default.

Each section is a frozen dataclass without defaults of its own: a key missing
from params.yaml is an error, not a silent fallback. Wrong keys and wrong types
fail with the file, the key and the expected form.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from selectit.core.catalog import (
    DTYPE_NAMES,
    LAYOUTS,
    TEMPLATES,
    TOKEN_LEVEL_SCORES,
    check_model_name,
    is_packaged_prompt_set,
    load_prompt_set,
    rater_name,
)
from selectit.core.errors import ParamsError


def is_remote(source: str) -> bool:
    """An http(s) URL or a Hugging Face dataset (`hf:owner/name[:split]`), not a local path."""
    return source.startswith(("http://", "https://", "hf:"))


@dataclass(frozen=True)
class IngestConfig:
    source: str  # a local file (relative to params.yaml), an http(s) URL, or hf:owner/name[:split]
    limit: int | None  # use only the first N readable rows (None: all)
    rows_key: str | None  # a file that is one JSON object holds its rows as a list under this key
    max_download_mb: int  # URL sources: a larger file stops with an error
    download_timeout_s: int  # URL sources: the whole download, retries included

    def validate(self, where: str) -> None:
        if not self.source.strip():
            raise ParamsError(f"{where}.source: expected a file, URL or hf:dataset")
        _positive(self.limit, f"{where}.limit", allow_none=True)
        _positive(self.max_download_mb, f"{where}.max_download_mb")
        _positive(self.download_timeout_s, f"{where}.download_timeout_s")
        if self.rows_key is not None and not self.rows_key.strip():
            raise ParamsError(f"{where}.rows_key: expected a key name or null")


@dataclass(frozen=True)
class ValidateConfig:
    min_chars: int  # instruction and response need at least this many non-space characters
    max_chars: int  # instruction + input + response, in characters; a longer response is cut to fit (flagged)
    max_reject_fraction: float  # above this share of rejected rows the dataset fails
    heldout: float  # share of valid examples set aside before scoring, for the held-out loss (0: none)
    seed: int  # which examples are held out

    def validate(self, where: str) -> None:
        if not 0 <= self.heldout < 1:
            raise ParamsError(f"{where}.heldout: expected a share in [0, 1), got {self.heldout}")
        _positive(self.min_chars, f"{where}.min_chars")
        _positive(self.max_chars, f"{where}.max_chars")
        if not 0 <= self.max_reject_fraction <= 1:
            raise ParamsError(
                f"{where}.max_reject_fraction: expected a number in [0, 1], got {self.max_reject_fraction}"
            )


@dataclass(frozen=True)
class HygieneConfig:
    """What the validate stage removes before anything is scored: benchmark questions and
    near-duplicates. Removed rows are rejects with their reason, never silently dropped."""

    decontaminate: bool  # reject examples that share a word n-gram with a question of evaluate.benchmarks_dir
    ngram: int  # words per n-gram (GPT-3's decontamination: 13)
    near_duplicates: bool  # reject later examples whose MinHash-estimated Jaccard with a kept one is >= jaccard
    jaccard: float  # in (0, 1]; NeMo Curator and data-juicer use about 0.8
    shingle_words: int  # words per shingle of the MinHash
    minhash_permutations: int  # more: a closer Jaccard estimate, more time
    rater_injection: str  # texts that address the rater: flag (kept, listed) | reject | off

    def validate(self, where: str) -> None:
        _one_of(self.rater_injection, ("flag", "reject", "off"), f"{where}.rater_injection")
        if self.ngram < 5:  # shorter n-grams match ordinary phrases, not copied questions
            raise ParamsError(f"{where}.ngram: expected an integer >= 5 (GPT-3 used 13), got {self.ngram}")
        if not 0 < self.jaccard <= 1:
            raise ParamsError(f"{where}.jaccard: expected a similarity in (0, 1], got {self.jaccard}")
        _positive(self.shingle_words, f"{where}.shingle_words")
        if self.minhash_permutations < 16:
            raise ParamsError(
                f"{where}.minhash_permutations: expected an integer >= 16 (the Jaccard estimate's error "
                f"grows as 1/sqrt of it), got {self.minhash_permutations}"
            )


# score.embeddings: the first rater's own embeddings, a dedicated encoder's, or none.
FIRST_RATER = "first-rater"
ENCODER = "encoder"


@dataclass(frozen=True)
class ScoreConfig:
    raters: list[str]  # short names, local folders/GGUF files, or hub ids
    prompt_set: str  # packaged set name or a YAML file
    num_prompts: int  # how many prompts of the set to use (the paper: 5)
    k: int  # rating scale 1..K (the paper: 5), independent of num_prompts
    template: str  # plain | chat
    layout: str  # prompt-first (the paper's) | example-first (the rating prompt after the example)
    cue: str  # text after the response; the rating digit comes right after it
    dtype: str  # one of DTYPE_NAMES
    device: str  # auto | cpu | cuda | cuda:N
    token_budget: int  # padded tokens per forward pass
    shard_size: int  # examples per shard: the unit of caching, resuming and scale-out
    max_length: int | None  # cap on rating-text tokens (None: the model's context)
    trust_remote_code: bool  # run model code from the hub; off unless you trust it
    compile: bool  # torch.compile the rater's forward pass once when it loads
    embeddings: str | None  # whose embeddings data/embeddings holds: first-rater, a rater's name, encoder, none/null
    embedding_encoder: str | None  # with embeddings: encoder, a sentence-embedding model (local folder or hub id)

    def validate(self, where: str) -> None:
        if not self.raters:
            raise ParamsError(f"{where}.raters: expected at least one rater model")
        names = [rater_name(r) for r in self.raters]
        if len(set(names)) != len(names):
            raise ParamsError(f"{where}.raters: two raters share a name: {names}")
        for i, rater in enumerate(self.raters):
            check_model_name(rater, f"{where}.raters[{i}]")
        if self.embeddings not in (None, "none", FIRST_RATER, ENCODER) and self.embedding_rater is None:
            raise ParamsError(
                f"{where}.embeddings: {self.embeddings!r} is not a rater of score.raters {names}; "
                f"expected {FIRST_RATER}, one of those, {ENCODER} or null"
            )
        if self.embeddings == ENCODER and not (self.embedding_encoder or "").strip():
            raise ParamsError(
                f"{where}.embedding_encoder: embeddings: {ENCODER} needs a sentence-embedding model "
                "(a local folder or a hub id)"
            )
        available = len(load_prompt_set(self.prompt_set))
        if not 1 <= self.num_prompts <= available:
            raise ParamsError(
                f"{where}.num_prompts: expected an integer from 1 to {available} (the size of "
                f"prompt set {self.prompt_set!r}), got {self.num_prompts}"
            )
        # Ratings are read from single digit tokens, so 9 is the largest scale.
        if not 2 <= self.k <= 9:
            raise ParamsError(f"{where}.k: expected an integer from 2 to 9 (single-digit ratings), got {self.k}")
        _one_of(self.template, TEMPLATES, f"{where}.template")
        _one_of(self.layout, LAYOUTS, f"{where}.layout")
        _one_of(self.dtype, DTYPE_NAMES, f"{where}.dtype")
        if self.device.startswith("cuda:") and not self.device[5:].isdigit():
            raise ParamsError(f"{where}.device: expected auto, cpu, cuda or cuda:N, got {self.device!r}")
        _positive(self.token_budget, f"{where}.token_budget")
        _positive(self.shard_size, f"{where}.shard_size")
        _positive(self.max_length, f"{where}.max_length", allow_none=True)

    @property
    def embedding_rater(self) -> str | None:
        """The rater (as score.raters writes it) whose own embeddings are kept, or None."""
        if self.embeddings == FIRST_RATER:
            return self.raters[0]
        return next((r for r in self.raters if self.embeddings in (r, rater_name(r))), None)

    @property
    def embedding_source(self) -> str | None:
        """What makes the embeddings: a rater's spec, the encoder's, or None (no embeddings)."""
        if self.embeddings == ENCODER:
            return self.embedding_encoder
        return self.embedding_rater


@dataclass(frozen=True)
class AggregateConfig:
    alpha: float  # weight of the prompt disagreement at sentence level (the paper: 0.2)
    authors_softmax: bool  # reproduce the released scripts' extra softmax
    weights: dict[str, float] | None  # rater weights; None: parameter counts
    token_score: str  # token level: paper (peak rating x spread, the paper's) | expected (sum of k x P'_k)

    def validate(self, where: str) -> None:
        if self.token_score not in TOKEN_LEVEL_SCORES:
            raise ParamsError(
                f"{where}.token_score: expected one of {list(TOKEN_LEVEL_SCORES)}, got {self.token_score!r}"
            )
        if not 0 <= self.alpha < float("inf"):  # also rejects NaN
            raise ParamsError(f"{where}.alpha: expected a finite number >= 0, got {self.alpha}")
        if self.weights is not None and (
            not all(0 <= w < float("inf") for w in self.weights.values()) or not any(self.weights.values())
        ):
            raise ParamsError(f"{where}.weights: expected finite numbers >= 0, not all zero, got {self.weights}")


# How the select stage ranks the examples (docs/guides/selectors.md); every one is also a fine-tuning variant.
SELECT_METHODS = ("selectit", "length", "ifd", "learned")
# How the budget is filled from the ranking (selectit/selection/diversity.py); none is the paper's.
DIVERSITY_MODES = ("none", "repr-filter", "k-center")


@dataclass(frozen=True)
class SelectConfig:
    ratio: float  # share of examples kept, in (0, 1] (the paper: 0.2)
    method: str  # one of SELECT_METHODS: selectit (the paper's) | length | ifd | learned
    ifd_model: str  # the model whose IFD ranks under `ifd` (as score.raters)
    ifd_max_tokens: int  # response tokens IFD reads (the IFD papers: 400)
    learned_pairs: str | None  # judged pairs the `learned` model is fitted on (relative to params.yaml)
    learned_pair_limit: int | None  # the first N usable pairs (None: all); each costs a rating of both responses
    learned_folds: int  # cross-validation folds: regularisation and the reported agreement
    learned_length_features: bool  # false: fit without the instruction and response lengths
    learned_ifd: bool  # add select.ifd_model's IFD as a feature (a forward pass pair per response)
    diversity: str  # one of DIVERSITY_MODES: none (top R%) | repr-filter (DEITA) | k-center
    max_similarity: float  # repr-filter: keep an example only if its cosine to every kept one is below this
    centre_embeddings: bool  # cosines of embeddings less the pool's mean (a rater's states crowd one direction)
    semantic_duplicates: float | None  # cosine at or above which an example duplicates a better-ranked one; None: off
    clusters: int  # k of the k-means over the pool whose clusters each selection touches (diversity.json)
    coverage_sample: int | None  # pool examples the coverage is measured over (seeded); None: all
    seed: int  # the LSH planes, k-center's projection tree, the k-means and the coverage sample

    def validate(self, where: str) -> None:
        if not 0 < self.ratio <= 1:
            raise ParamsError(f"{where}.ratio: expected a number in (0, 1], got {self.ratio}")
        _one_of(self.method, SELECT_METHODS, f"{where}.method")
        if not self.ifd_model.strip():
            raise ParamsError(f"{where}.ifd_model: expected a model (as score.raters)")
        check_model_name(self.ifd_model, f"{where}.ifd_model")
        _positive(self.ifd_max_tokens, f"{where}.ifd_max_tokens")
        if self.learned_pairs is not None and not self.learned_pairs.strip():
            raise ParamsError(f"{where}.learned_pairs: expected a JSON lines file of judged pairs, or null")
        _positive(self.learned_pair_limit, f"{where}.learned_pair_limit", allow_none=True)
        if self.learned_folds < 2:
            raise ParamsError(f"{where}.learned_folds: expected an integer >= 2, got {self.learned_folds}")
        _one_of(self.diversity, DIVERSITY_MODES, f"{where}.diversity")
        for key in ("max_similarity", "semantic_duplicates"):
            value = getattr(self, key)
            if value is not None and not 0 < value <= 1:  # also rejects NaN
                raise ParamsError(f"{where}.{key}: expected a cosine similarity in (0, 1], got {value}")
        _positive(self.clusters, f"{where}.clusters")
        _positive(self.coverage_sample, f"{where}.coverage_sample", allow_none=True)
        if self.seed < 0:  # numpy's generators take no negative seed
            raise ParamsError(f"{where}.seed: expected an integer >= 0, got {self.seed}")

    @property
    def needs_embeddings(self) -> bool:
        return self.diversity != "none" or self.semantic_duplicates is not None


@dataclass(frozen=True)
class AuditConfig:
    enabled: bool  # run the audit stage (make run, dvc repro); the scheduled deployment skips it whatever this says
    pairs: str  # judged pairs, JSON lines {instruction, input?, response_a, response_b, preferred} (relative to params)
    limit: int | None  # audit only the first N usable pairs (None: all)
    ifd_raters: list[str]  # models whose IFD of each response is also audited (as score.raters); [] = none
    ifd_max_tokens: int  # response tokens IFD reads (the IFD papers: 400)

    def validate(self, where: str) -> None:
        if not self.pairs.strip():
            raise ParamsError(f"{where}.pairs: expected a JSON lines file of judged pairs")
        _positive(self.limit, f"{where}.limit", allow_none=True)
        names = [rater_name(r) for r in self.ifd_raters]
        if len(set(names)) != len(names):
            raise ParamsError(f"{where}.ifd_raters: two models share a name: {names}")
        for i, rater in enumerate(self.ifd_raters):
            check_model_name(rater, f"{where}.ifd_raters[{i}]")
        _positive(self.ifd_max_tokens, f"{where}.ifd_max_tokens")


# What each fine-tuning variant trains on; all but `full` and `base` have the selection's size.
# The diversity variants train on the ranking's selection by that diversity mode, whatever
# select.diversity says (the select stage writes one selection per mode when embeddings exist).
DIVERSITY_VARIANTS = {"selectit-diverse": "repr-filter", "selectit-kcenter": "k-center"}
VARIANTS = ("selectit", "random", "length", "ifd", "learned", "bottom", "full", "base", *DIVERSITY_VARIANTS)
FINETUNE_METHODS = ("lora", "full")


@dataclass(frozen=True)
class FinetuneConfig:
    enabled: bool  # false: selection only; the finetune, evaluate and compare stages do not run
    base_model: str  # offline short name, local folder or GGUF, or hub id (as score.raters)
    variants: list[str]  # which of VARIANTS to train; `base` is the base model untuned
    method: str  # lora (a peft adapter) | full (every weight)
    seed: int  # weights init of the adapter, data order, and the `random` variant
    epochs: float  # passes over each variant's data (the paper: 3)
    max_steps: int | None  # cap on optimiser steps per variant (None: epochs decide)
    learning_rate: float  # peak learning rate (the paper: 2e-5, full fine-tuning)
    lr_scheduler: str  # a transformers scheduler name (the paper: cosine)
    warmup_ratio: float  # share of steps warming up (the paper: 0.03)
    batch_size: int  # examples per optimiser step (the paper: 128)
    micro_batch_size: int  # examples per forward pass; the rest is gradient accumulation
    max_length: int  # tokens of prompt + response kept per example
    gradient_checkpointing: bool  # recompute activations: less memory, about a third more compute
    lora_r: int  # adapter rank
    lora_alpha: int  # adapter scale numerator (scale = alpha / r)
    lora_dropout: float
    lora_target_modules: str  # "all-linear" or comma-separated module names
    dtype: str  # auto (bf16 where the hardware has it) | float32 | bfloat16
    device: str  # auto | cpu | cuda | cuda:N
    trust_remote_code: bool  # run model code from the hub; off unless you trust it

    def validate(self, where: str) -> None:
        check_model_name(self.base_model, f"{where}.base_model")
        if not self.variants:
            raise ParamsError(f"{where}.variants: expected at least one of {list(VARIANTS)}")
        for variant in self.variants:
            _one_of(variant, VARIANTS, f"{where}.variants")
        if len(set(self.variants)) != len(self.variants):
            raise ParamsError(f"{where}.variants: a variant is listed twice: {self.variants}")
        _one_of(self.method, FINETUNE_METHODS, f"{where}.method")
        _one_of(self.dtype, ("auto", "float32", "bfloat16"), f"{where}.dtype")
        if not 0 < self.epochs < float("inf"):
            raise ParamsError(f"{where}.epochs: expected a number > 0, got {self.epochs}")
        _positive(self.max_steps, f"{where}.max_steps", allow_none=True)
        if not 0 < self.learning_rate < 1:
            raise ParamsError(f"{where}.learning_rate: expected a number in (0, 1), got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ParamsError(f"{where}.warmup_ratio: expected a number in [0, 1), got {self.warmup_ratio}")
        _positive(self.batch_size, f"{where}.batch_size")
        _positive(self.micro_batch_size, f"{where}.micro_batch_size")
        if self.batch_size % self.micro_batch_size:
            raise ParamsError(
                f"{where}.batch_size: {self.batch_size} is not a multiple of micro_batch_size {self.micro_batch_size}"
            )
        _positive(self.max_length, f"{where}.max_length")
        _positive(self.lora_r, f"{where}.lora_r")
        _positive(self.lora_alpha, f"{where}.lora_alpha")
        if not 0 <= self.lora_dropout < 1:
            raise ParamsError(f"{where}.lora_dropout: expected a number in [0, 1), got {self.lora_dropout}")

    @property
    def accumulation_steps(self) -> int:
        return self.batch_size // self.micro_batch_size


BENCHMARKS = ("mmlu", "gsm8k", "bbh", "humaneval")


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str | None  # an OpenAI-compatible endpoint (http://127.0.0.1:8000/v1); null = no judge, step skipped
    model: str | None  # the judge model's name at that endpoint
    api_key_env: str | None  # environment variable holding the key; null for a local server
    questions: int | None  # AlpacaEval instructions judged per variant (seeded sample); null = all 805
    annotator: str  # the alpaca-eval annotator whose prompt and parser are used

    @property
    def enabled(self) -> bool:
        return self.base_url is not None

    def validate(self, where: str) -> None:
        if not self.enabled:
            return
        if not self.base_url.startswith(("http://", "https://")):
            raise ParamsError(f"{where}.base_url: expected an http(s) URL, got {self.base_url!r}")
        if not (self.model or "").strip():
            raise ParamsError(f"{where}.model: a judge endpoint needs the judge model's name")
        _positive(self.questions, f"{where}.questions", allow_none=True)
        if not self.annotator.strip():
            raise ParamsError(f"{where}.annotator: expected an alpaca-eval annotator name (for example chatgpt)")


@dataclass(frozen=True)
class EvaluateConfig:
    heldout_loss: bool  # mean response NLL on the held-out examples (validate.heldout)
    benchmarks: dict[str, int | None]  # questions per benchmark (mmlu, bbh: per subject); null = all; 0 = skip
    benchmarks_dir: str  # the offline benchmark files (relative to params.yaml)
    run_code: bool  # HumanEval executes model-written code; only when you accept that
    judge: JudgeConfig  # AlpacaEval-style win rate against text-davinci-003's answers
    preference_pairs: int  # judged pairs for preference accuracy (0: off); never fitted on (preference_split.py)
    preference_file: str  # the judged pairs (JSON lines, relative to params.yaml)
    preference_seed: int  # which pairs are chosen
    max_new_tokens: int  # cap on generated tokens (GSM8K, BBH, HumanEval, judged answers)
    batch_size: int  # sequences per forward pass
    reference: str  # the variant every other one is compared with (paired bootstrap)
    bootstrap_resamples: int
    confidence: float  # of the bootstrap intervals
    seed: int

    def validate(self, where: str) -> None:
        for name, limit in self.benchmarks.items():
            _one_of(name, BENCHMARKS, f"{where}.benchmarks")
            if limit is not None and limit < 0:
                raise ParamsError(f"{where}.benchmarks.{name}: expected a count >= 0 or null, got {limit}")
        if self.benchmarks.get("humaneval") != 0 and "humaneval" in self.benchmarks and not self.run_code:
            raise ParamsError(
                f"{where}.benchmarks.humaneval: HumanEval runs model-written code; set "
                "evaluate.run_code: true to allow it, or set humaneval to 0"
            )
        if self.preference_pairs < 0:
            raise ParamsError(f"{where}.preference_pairs: expected a count >= 0 (0: off), got {self.preference_pairs}")
        if self.preference_pairs and not self.preference_file.strip():
            raise ParamsError(f"{where}.preference_file: expected a JSON lines file of judged pairs")
        if self.preference_seed < 0:
            raise ParamsError(f"{where}.preference_seed: expected an integer >= 0, got {self.preference_seed}")
        _positive(self.max_new_tokens, f"{where}.max_new_tokens")
        _positive(self.batch_size, f"{where}.batch_size")
        _positive(self.bootstrap_resamples, f"{where}.bootstrap_resamples")
        if not 0 < self.confidence < 1:
            raise ParamsError(f"{where}.confidence: expected a number in (0, 1), got {self.confidence}")
        if not self.reference.strip():
            raise ParamsError(f"{where}.reference: expected a variant name")

    @property
    def active_benchmarks(self) -> dict[str, int | None]:
        return {name: limit for name, limit in self.benchmarks.items() if limit != 0}


@dataclass(frozen=True)
class ReportConfig:
    """The run report's selection-stability check; it changes the report, never the selection."""

    stability_resamples: int  # resamples of prompts and raters (0: skip the check)
    stability_seed: int  # which prompts and raters each resample draws
    stability_ratios: list[float]  # R of the curve over R (select.ratio is added)
    stability_alphas: list[float]  # alpha of the curve over alpha (aggregate.alpha is added)

    def validate(self, where: str) -> None:
        if self.stability_resamples < 0:
            raise ParamsError(
                f"{where}.stability_resamples: expected an integer >= 0 (0: no check), got {self.stability_resamples}"
            )
        if self.stability_seed < 0:  # numpy's generators take no negative seed
            raise ParamsError(f"{where}.stability_seed: expected an integer >= 0, got {self.stability_seed}")
        if not self.stability_ratios or not all(0 < r <= 1 for r in self.stability_ratios):
            raise ParamsError(
                f"{where}.stability_ratios: expected a non-empty list of numbers in (0, 1], got {self.stability_ratios}"
            )
        if not self.stability_alphas or not all(0 <= a < float("inf") for a in self.stability_alphas):
            raise ParamsError(
                f"{where}.stability_alphas: expected a non-empty list of finite numbers >= 0, "
                f"got {self.stability_alphas}"
            )


@dataclass(frozen=True)
class RayConfig:
    """Where the score stage rates its shards. It never changes a rating: the same shard
    cache, keys and tables whichever way they run, so DVC does not re-run on a change here."""

    address: str | None  # None: in this process; "local": a Ray started for the run; else a cluster's address
    replicas: int  # rater replicas (Ray actors) per rater, each keeping its model loaded
    cpus_per_replica: float  # CPUs Ray reserves for one replica
    gpus_per_replica: int | None  # None: what the rater needs (0 without GPUs; more for a rater split over GPUs)
    retries: int  # times a replica lost with its worker or node is restarted and its shard re-run
    prefect_api_url: str | None  # the Prefect server Ray workers report to; None: PREFECT_API_URL or this run's

    def validate(self, where: str) -> None:
        if self.address is not None and not self.address.strip():
            raise ParamsError(f"{where}.address: expected null, local or a Ray address, got {self.address!r}")
        _positive(self.replicas, f"{where}.replicas")
        if not self.cpus_per_replica > 0:
            raise ParamsError(f"{where}.cpus_per_replica: expected a number > 0, got {self.cpus_per_replica}")
        if self.gpus_per_replica is not None and self.gpus_per_replica < 0:
            raise ParamsError(
                f"{where}.gpus_per_replica: expected null or an integer >= 0, got {self.gpus_per_replica}"
            )
        if self.retries < 0:
            raise ParamsError(f"{where}.retries: expected an integer >= 0, got {self.retries}")

    @property
    def enabled(self) -> bool:
        return self.address is not None


@dataclass(frozen=True)
class TrackingConfig:
    experiment: str  # MLflow experiment name
    tracking_uri: str | None  # None: a SQLite store in the project (mlflow.db); MLFLOW_TRACKING_URI wins

    def validate(self, where: str) -> None:
        if not self.experiment.strip():
            raise ParamsError(f"{where}.experiment: expected a non-empty name")


@dataclass(frozen=True)
class Params:
    ingest: IngestConfig
    validate: ValidateConfig
    hygiene: HygieneConfig
    score: ScoreConfig
    aggregate: AggregateConfig
    select: SelectConfig
    audit: AuditConfig
    finetune: FinetuneConfig
    evaluate: EvaluateConfig
    report: ReportConfig
    ray: RayConfig
    tracking: TrackingConfig


def load_params(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Params:
    """Read params.yaml, apply `section.key` overrides (from the command line), validate."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file {path} not found (pass --params to name another)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        raw.setdefault(section, {})[key] = value
    expected = [f.name for f in dataclasses.fields(Params)]
    unknown = sorted(set(raw) - set(expected))
    if unknown:
        raise ParamsError(f"{path}: unknown section(s) {unknown}; expected sections: {expected}")
    _resolve_paths(raw, path.parent)
    sections = {}
    for field in dataclasses.fields(Params):
        if field.name not in raw:
            raise ParamsError(f"{path}: missing section '{field.name}'")
        sections[field.name] = _build(field.type, raw[field.name], f"{path}: {field.name}")
    params = Params(**sections)
    _check_across_sections(params, path)
    return params


def _resolve_paths(raw: dict, folder: Path) -> None:
    """Paths in params.yaml are relative to the file, wherever the command runs from."""
    ingest, score, evaluate = raw.get("ingest"), raw.get("score"), raw.get("evaluate")
    source = ingest.get("source") if isinstance(ingest, dict) else None
    if isinstance(source, str) and source.strip() and not is_remote(source):
        ingest["source"] = str(folder / source)
    prompt_set = score.get("prompt_set") if isinstance(score, dict) else None
    if isinstance(prompt_set, str) and not is_packaged_prompt_set(prompt_set):
        score["prompt_set"] = str(folder / prompt_set)
    benchmarks_dir = evaluate.get("benchmarks_dir") if isinstance(evaluate, dict) else None
    if isinstance(benchmarks_dir, str):
        evaluate["benchmarks_dir"] = str(folder / benchmarks_dir)
    preference_file = evaluate.get("preference_file") if isinstance(evaluate, dict) else None
    if isinstance(preference_file, str) and preference_file.strip():
        evaluate["preference_file"] = str(folder / preference_file)
    audit = raw.get("audit")
    pairs = audit.get("pairs") if isinstance(audit, dict) else None
    if isinstance(pairs, str) and pairs.strip():
        audit["pairs"] = str(folder / pairs)
    select = raw.get("select")
    learned_pairs = select.get("learned_pairs") if isinstance(select, dict) else None
    if isinstance(learned_pairs, str) and learned_pairs.strip():
        select["learned_pairs"] = str(folder / learned_pairs)


def writes_embeddings(params: Params) -> bool:
    """Whether the pipeline writes the examples' embeddings (Layout.embeddings, score.embeddings),
    which the diversity modes, semantic duplicates and the diversity variants read."""
    return params.score.embedding_source is not None


def _check_embeddings(params: Params, path: Path) -> None:
    if writes_embeddings(params):
        return
    select = params.select
    needing = [
        *([f"select.diversity: {select.diversity}"] if select.diversity != "none" else []),
        *(["select.semantic_duplicates"] if select.semantic_duplicates is not None else []),
        *[f"finetune.variants: {v}" for v in params.finetune.variants if v in DIVERSITY_VARIANTS],
    ]
    if needing:
        raise ParamsError(
            f"{path}: {needing[0]} needs the examples' embeddings, and the score stage writes none; "
            "set score.embeddings (first-rater, a rater's name or encoder), or leave the option off"
        )


def _check_across_sections(params: Params, path: Path) -> None:
    _check_embeddings(params, path)
    weights = params.aggregate.weights
    names = sorted(rater_name(r) for r in params.score.raters)
    if weights is not None and sorted(weights) != names:
        raise ParamsError(
            f"{path}: aggregate.weights: names {sorted(weights)} do not match the raters of score.raters {names}"
        )
    learned_wanted = params.select.method == "learned" or "learned" in params.finetune.variants
    if learned_wanted and params.select.learned_pairs is None:
        raise ParamsError(
            f"{path}: select.learned_pairs: the `learned` selector is fitted on judged pairs; name a pairs file "
            "(e.g. ../shared/data/judged/dev_pairs.jsonl)"
        )
    if learned_wanted and not Path(params.select.learned_pairs).is_file():
        raise ParamsError(
            f"{path}: select.learned_pairs: {params.select.learned_pairs} not found; name the judged pairs "
            "(JSON lines) the `learned` selector is fitted on"
        )
    evaluate = params.evaluate
    measured = params.finetune.enabled  # selection only (finetune.enabled false): nothing is trained or measured
    if measured and not (
        evaluate.heldout_loss or evaluate.active_benchmarks or evaluate.judge.enabled or evaluate.preference_pairs
    ):
        raise ParamsError(
            f"{path}: evaluate: nothing to measure; set heldout_loss: true, preference_pairs, a benchmark count "
            "or a judge (or finetune.enabled: false for the selection alone)"
        )
    if measured and evaluate.preference_pairs and not Path(evaluate.preference_file).is_file():
        raise ParamsError(
            f"{path}: evaluate.preference_file: {evaluate.preference_file} not found; name the judged pairs "
            "(JSON lines), or set evaluate.preference_pairs: 0"
        )
    if measured and params.evaluate.heldout_loss and params.validate.heldout == 0:
        raise ParamsError(f"{path}: evaluate.heldout_loss needs held-out examples; set validate.heldout > 0")
    if params.hygiene.decontaminate and not Path(evaluate.benchmarks_dir).is_dir():
        raise ParamsError(
            f"{path}: evaluate.benchmarks_dir: {evaluate.benchmarks_dir} is not a folder; decontamination "
            "(hygiene.decontaminate) reads every benchmark there; name the folder, or set hygiene.decontaminate: false"
        )


def _build(cls_name, raw: Any, where: str):
    cls = globals()[cls_name] if isinstance(cls_name, str) else cls_name
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    expected = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(expected))
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {unknown}; expected keys: {expected}")
    missing = [k for k in expected if k not in raw]
    if missing:
        raise ParamsError(f"{where}: missing key(s) {missing}")
    values = {k: _check_type(raw[k], hints[k], f"{where}.{k}") for k in expected}
    config = cls(**values)
    config.validate(where)
    return config


def _check_type(value: Any, hint, where: str):
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_type(value, inner, where)
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        return [_check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        return {_check_type(k, args[0], where): _check_type(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ParamsError(f"{where}: expected {hint.__name__}, got {value!r} ({type(value).__name__})")
    return value


def _positive(value: int | None, where: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value < 1:
        raise ParamsError(f"{where}: expected an integer >= 1, got {value}")


def _one_of(value: str, choices: tuple[str, ...], where: str) -> None:
    if value not in choices:
        raise ParamsError(f"{where}: expected one of {list(choices)}, got {value!r}")
