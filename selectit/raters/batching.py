"""Group token sequences into batches under a padded-token budget."""

from __future__ import annotations

from collections.abc import Sequence


def token_budget_batches(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Indices grouped so that batch_size * longest_length <= token_budget.

    Sequences are taken longest first: neighbours have similar lengths, so
    little compute goes to padding, and the largest batch (the one most likely
    to run out of memory) comes first instead of hours into a run. A sequence
    longer than the budget gets a batch of its own.
    """
    if token_budget < 1:
        raise ValueError(f"token_budget must be >= 1, got {token_budget}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and longest * (len(current) + 1) > token_budget:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
