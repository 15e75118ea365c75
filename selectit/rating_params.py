"""params.yaml's `score` and `ray` keys as the plain values rating runs on.

Rating (layer 4) never reads the config objects; this is where they become its
settings, once, for every caller: the command line, the audit, `explain`, the score
stage's tasks and flows. It sits in the lowest layer above rating that all of them
reach, and only what rates imports it, so no other stage depends on rating's settings.
"""

from __future__ import annotations

from selectit.config import RayConfig, ScoreConfig
from selectit.rating.settings import RatingSettings, RaySettings


def rating_settings(score: ScoreConfig) -> RatingSettings:
    """What rating reads of `score`: every key but the list of raters."""
    return RatingSettings(
        prompt_set=score.prompt_set,
        num_prompts=score.num_prompts,
        template=score.template,
        layout=score.layout,
        cue=score.cue,
        k=score.k,
        dtype=score.dtype,
        device=score.device,
        token_budget=score.token_budget,
        shard_size=score.shard_size,
        max_length=score.max_length,
        trust_remote_code=score.trust_remote_code,
        compile=score.compile,
    )


def ray_settings(ray: RayConfig) -> RaySettings:
    """What rating on Ray reads of `ray`; only for a `ray` that names an address (enabled)."""
    return RaySettings(
        address=ray.address,
        replicas=ray.replicas,
        cpus_per_replica=ray.cpus_per_replica,
        gpus_per_replica=ray.gpus_per_replica,
        retries=ray.retries,
        prefect_api_url=ray.prefect_api_url,
    )
