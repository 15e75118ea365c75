"""The plain values rating runs on: what the engine, the rating texts and the shard cache read.

Rating does not read params.yaml's config objects; the layer above converts them
once (selectit.context.rating_settings, selectit.context.ray_settings).
"""

from __future__ import annotations

from dataclasses import dataclass

from selectit.rating.prompts import RatingPrompts


@dataclass(frozen=True)
class RatingSettings:
    """How every rater rates: the prompts and their reading, precision, device and batching."""

    prompt_set: str  # packaged set name or a YAML file
    num_prompts: int  # how many prompts of the set to use
    template: str  # plain | chat
    layout: str  # prompt-first | example-first
    cue: str  # text after the response; the rating digit comes right after it
    k: int  # rating scale 1..K
    dtype: str  # auto or one of dtypes.DTYPES
    device: str  # auto | cpu | cuda | cuda:N
    token_budget: int  # padded tokens per forward pass
    shard_size: int  # examples per shard: the unit of caching, resuming and scale-out
    max_length: int | None  # cap on rating-text tokens (None: the model's context)
    trust_remote_code: bool  # run model code from the hub
    compile: bool  # torch.compile the rater's forward pass once when it loads

    def prompts(self) -> RatingPrompts:
        return RatingPrompts.from_set(self.prompt_set, self.num_prompts, self.template, self.cue, self.k, self.layout)


@dataclass(frozen=True)
class RaySettings:
    """Where shards are rated on Ray and how replicas are sized and retried."""

    address: str  # "local": a Ray started for the run; else a cluster's address
    replicas: int  # rater replicas (Ray actors) per rater
    cpus_per_replica: float
    gpus_per_replica: int | None  # None: what the rater needs on this machine's GPUs
    retries: int  # times a lost replica is restarted and its shard re-run
    prefect_api_url: str | None  # the Prefect server Ray workers report to; None: PREFECT_API_URL or this run's
