"""params.yaml's `score` and `ray` keys as the plain values rating runs on.

Rating (layer 4) never reads the config objects; this is where they become its
settings, once, for every caller: the command line, the audit, `explain`, the score
stage's tasks and flows. It sits in the lowest layer above rating that all of them
reach, and only what rates imports it, so no other stage depends on rating's settings.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from selectit.config import RayConfig, ScoreConfig
from selectit.rating.settings import RatingSettings, RaySettings

T = TypeVar("T")


def _settings(cls: type[T], config: object) -> T:
    """`cls` filled from the config's fields of the same names (the settings name them as params.yaml does)."""
    return cls(**{field.name: getattr(config, field.name) for field in dataclasses.fields(cls)})


def rating_settings(score: ScoreConfig) -> RatingSettings:
    """What rating reads of `score`: every key but the list of raters."""
    return _settings(RatingSettings, score)


def ray_settings(ray: RayConfig) -> RaySettings:
    """What rating on Ray reads of `ray`; only for a `ray` that names an address (enabled)."""
    return _settings(RaySettings, ray)
