"""The held-out split: valid examples set aside before scoring, never scored,
selected or trained on, for the evaluation's held-out loss."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from selectit.core.errors import ParamsError
from selectit.core.records import Example

_SCALE = float(1 << 64)


def _position(seed: int, example_id: str) -> float:
    """A number in [0, 1) fixed by the seed and the example's content id."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{example_id}".encode()).digest()[:8], "big") / _SCALE


def split_heldout(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(kept, held out), each in input order.

    An example is held out when its seeded hash falls below `fraction`: the choice
    depends on its content and the seed only, so rows appended to the source never
    move an old example in or out of the held-out set (its loss stays comparable
    across runs, and no cached rating is wasted). Data too small to hold any out
    at this fraction still gives one held-out example, the lowest hash."""
    held = heldout_ids([e.id for e in examples], fraction, seed)
    return [e for e in examples if e.id not in held], [e for e in examples if e.id in held]


def heldout_ids(ids: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The ids `split_heldout` holds out, from the ids of the valid examples alone (a stage
    that streams its examples needs no more); raises if none would be left to score."""
    if fraction == 0 or not ids:
        return set()
    positions = {i: _position(seed, i) for i in ids}
    held = {i for i, p in positions.items() if p < fraction} or {min(positions, key=positions.get)}
    if len(held) == len(positions):
        raise ParamsError(
            f"validate.heldout: holding out {fraction} of {len(ids)} valid examples leaves none to score; "
            "lower it (0 turns the held-out loss off)"
        )
    return held
