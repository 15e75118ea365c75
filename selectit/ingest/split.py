"""The held-out split: valid examples set aside before scoring, never scored,
selected or trained on, for the evaluation's held-out loss."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from selectit.errors import ParamsError
from selectit.ingest.records import Example


def split_heldout(examples: Sequence[Example], n_heldout: int, seed: int) -> tuple[list[Example], list[Example]]:
    """(kept, held out), each in input order.

    The held-out examples are the n with the smallest seeded hash of their id: the
    choice depends on the seed and the content only, not on row order or machine."""
    if n_heldout == 0:
        return list(examples), []
    if n_heldout >= len(examples):
        raise ParamsError(
            f"validate.heldout: {n_heldout} held-out examples would leave none of the {len(examples)} "
            "valid examples to score; lower it (0 turns the held-out loss off)"
        )
    ranked = sorted(examples, key=lambda e: hashlib.sha256(f"{seed}:{e.id}".encode()).hexdigest())
    heldout_ids = {e.id for e in ranked[:n_heldout]}
    kept = [e for e in examples if e.id not in heldout_ids]
    heldout = [e for e in examples if e.id in heldout_ids]
    return kept, heldout
