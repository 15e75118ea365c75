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


def shared_prefix_groups(sequences: Sequence[Sequence[int]], min_prefix: int) -> list[tuple[int, list[int]]]:
    """Split sequences into groups that share a prefix of at least `min_prefix` tokens.

    Returns (prefix length, indices) per group; prefix length 0 means "no shared
    prefix worth caching". Rating texts start with the rating prompt, so all
    texts of one prompt share it: its keys and values need computing only once.
    Each prefix stops at least one token short of its shortest member, so every
    sequence keeps a suffix whose last position is read.
    """
    by_head: dict[tuple[int, ...], list[int]] = {}
    for index, seq in enumerate(sequences):
        by_head.setdefault(tuple(seq[:min_prefix]), []).append(index)
    groups = []
    for head, members in by_head.items():
        first = sequences[members[0]]
        common = min(len(sequences[i]) for i in members) - 1
        for i in members[1:]:
            seq, j = sequences[i], len(head)
            while j < common and seq[j] == first[j]:
                j += 1
            common = j
        usable = len(members) > 1 and len(head) == min_prefix and common >= min_prefix
        groups.append((common if usable else 0, members))
    return groups
