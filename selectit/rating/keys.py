"""The shard cache of one rater under given settings: what its key holds and where it comes from.

Every rating path (in this process, or a Ray replica) opens a rater's cache
through `rater_cache`, so a rating is found under the same key whichever way it was made.
"""

from __future__ import annotations

from pathlib import Path

from selectit.rating.dtypes import resolve_device
from selectit.rating.models import resolve
from selectit.rating.placement import plan_for_source
from selectit.rating.settings import RatingSettings
from selectit.rating.shards import ShardCache


def rater_cache(root: Path, spec: str, settings: RatingSettings) -> ShardCache:
    """The shard cache of one rater under these settings.

    The same model copied to another folder or node keys the same; ratings made
    in bf16 never stand in for fp32 ones (`auto` is keyed by what it resolves to
    here), nor ratings from a GPU for CPU ones, whose kernels round differently.
    """
    source = resolve(spec, settings.trust_remote_code)
    prompts = settings.prompts()
    key = {
        "model": source.content_id,
        "prompt_version": prompts.version,
        "template": prompts.template,
        "k": prompts.k,
        # What `auto` resolves to for this rater here: on a GPU it depends on the rater's size
        # (bf16 weights when fp32 ones do not fit); on a CPU it is resolve_dtype's choice.
        "dtype": plan_for_source(source, settings.dtype, settings.device, settings.trust_remote_code).dtype,
        "device": resolve_device(settings.device).type,
        "max_length": settings.max_length,
    }
    return ShardCache(root, source.name, key)
