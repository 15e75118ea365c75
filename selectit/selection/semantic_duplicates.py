"""Semantic duplicates: examples whose embeddings' cosine similarity to a better-ranked
example is at or above `select.semantic_duplicates`.

MinHash near-duplicates (hygiene, validate stage) catch copies with small edits;
paraphrases share few word shingles and pass. Their embeddings still lie close, so
the select stage removes them before choosing: the ranking is walked from the best,
and an example as close as the threshold to one kept so far is a duplicate of the
closest such one. The better-ranked of a group stays (not the first in the file, as
for MinHash, because at this point a ranking says which is better). Each removed
example is a reject naming the id it duplicates and the cosine, in the same form as
the near-duplicate rejects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selectit.selection.rows import RankedRows, as_rows
from selectit.selection.similarity import KeptSet, small_products


@dataclass(frozen=True)
class SemanticDuplicate:
    of: str  # the id of the better-ranked kept example it duplicates
    similarity: float  # the cosine of their embeddings

    @property
    def reason(self) -> str:
        return f"semantic duplicate of {self.of} (cosine similarity {self.similarity:.3f})"


def semantic_duplicate_rows(
    vectors: RankedRows | np.ndarray, threshold: float, *, exact: bool = False, seed: int = 0
) -> dict[int, tuple[int, float]]:
    """Rows of `vectors` (unit rows in ranking order: row 0 is the best) whose cosine to a
    better-ranked kept row is at or above `threshold`: row -> (that row, cosine). Every row
    that is no duplicate is kept, so the search holds most of the pool (2 x dim bytes a row)."""
    rows = as_rows(vectors)
    kept = KeptSet(rows.dim, threshold, capacity=len(rows), pool=len(rows), exact=exact, seed=seed)
    duplicates = {}
    with small_products():
        for position, vector, key in kept.walk(rows):
            match = kept.closest(vector, key)
            if match is None:
                kept.add(position, vector, key)
            else:
                duplicates[position] = (match.index, match.similarity)
    return duplicates
