"""Batches of token sequences under a padded-token budget (selectit/raters/batching.py)."""

import numpy as np
import pytest

from selectit.rating.batching import token_budget_batches


def random_cases(n_cases=200, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        n = int(rng.integers(0, 60))
        lengths = [int(x) for x in rng.integers(1, 600, size=n)]
        budget = int(rng.integers(1, 2500))
        yield lengths, budget


def test_hand_worked_example():
    # longest first: 8 | 5,3 (2 * 5 = 10 <= 10) | 2 (3 * 5 = 15 > 10 closes the batch before it)
    assert token_budget_batches([5, 3, 8, 2], 10) == [[2], [0, 1], [3]]


def test_everything_fits_in_one_batch():
    # 4 * 25 = 100 <= 100
    assert token_budget_batches([10, 25, 20, 5], 100) == [[1, 2, 0, 3]]


def test_empty_input_gives_no_batches():
    assert token_budget_batches([], 100) == []


def test_equal_lengths_keep_index_order():
    # 3 per batch (3 * 4 = 12 <= 12), ties in length broken by index
    assert token_budget_batches([4] * 7, 12) == [[0, 1, 2], [3, 4, 5], [6]]


def test_every_index_appears_exactly_once():
    for lengths, budget in random_cases(seed=1):
        batches = token_budget_batches(lengths, budget)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(len(lengths)))
        assert all(b for b in batches)  # no empty batch


def test_every_batch_fits_the_budget_unless_single():
    for lengths, budget in random_cases(seed=2):
        for batch in token_budget_batches(lengths, budget):
            longest = max(lengths[i] for i in batch)
            assert len(batch) == 1 or len(batch) * longest <= budget


def test_sequence_longer_than_budget_gets_its_own_batch():
    lengths = [3, 50, 4, 2, 70]
    batches = token_budget_batches(lengths, 20)
    assert [4] in batches and [1] in batches
    # the short ones share: 3 * 4 = 12 <= 20
    assert [2, 0, 3] in batches


def test_over_budget_sequences_are_always_alone():
    for lengths, budget in random_cases(seed=3):
        for batch in token_budget_batches(lengths, budget):
            if any(lengths[i] > budget for i in batch):
                assert len(batch) == 1


def test_batches_are_in_non_increasing_length_order():
    for lengths, budget in random_cases(seed=4):
        ordered = [lengths[i] for b in token_budget_batches(lengths, budget) for i in b]
        assert ordered == sorted(ordered, reverse=True)


def test_batches_are_not_split_needlessly():
    # greedy: a batch closes only when the next sequence would break the budget
    for lengths, budget in random_cases(seed=5):
        batches = token_budget_batches(lengths, budget)
        for batch in batches[:-1]:
            longest = lengths[batch[0]]
            assert (len(batch) + 1) * longest > budget


@pytest.mark.parametrize("budget", [0, -5])
def test_budget_below_one_rejected(budget):
    with pytest.raises(ValueError, match="token_budget must be >= 1"):
        token_budget_batches([1, 2, 3], budget)


def test_budget_of_one_puts_every_sequence_alone():
    assert token_budget_batches([1, 1, 1], 1) == [[0], [1], [2]]
