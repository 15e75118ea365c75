"""Which earlier-kept example is closest to a new one, at or above a cosine threshold.

Both the representation filter (DEITA) and semantic duplicates walk a ranking and ask,
for each example in turn, "is it too close to one already kept?". Comparing it with
every kept example costs time in proportion to the pool times the kept set, which
grows with the square of the pool. `KeptSet` instead files each kept example in
buckets of random-hyperplane LSH (Charikar's SimHash): `tables` hash tables, each
keyed by the signs of `bits` random projections. Two unit vectors at angle t agree on
one sign with probability 1 - t/pi, so a pair at the threshold shares at least one
bucket with probability 1 - (1 - p^bits)^tables; `tables` is chosen so that a pair at
the threshold is missed at most once in `MISS_RATE` (closer pairs even more rarely).
The cosine of the candidates a bucket brings up is then computed exactly.

`bits` grows with the most examples the set will hold, so that a bucket holds about the
same few examples at any pool size: a query then costs about the same at 5,000 rows as
at 50,000, and the walk's time grows linearly with the pool.

With `exact=True` (and for pools too small for buckets to pay off) every kept example
is a candidate: the plain search, which the tests compare the bucketed one with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

MISS_RATE = 1e-3  # at most this share of pairs exactly at the threshold escape the buckets
BITS = range(8, 17)  # signs per bucket key (keys are 16-bit): 256 to 65,536 buckets a table
MAX_TABLES = 64  # lower thresholds would need more tables: the search falls back to exact
EXACT_BELOW = 2_000  # pools smaller than this are searched exactly (one small product)
# Cosines are computed in float32 from float16-stored vectors: an example and its exact copy
# may come out at 0.99999994, so "at or above the threshold" allows this much rounding.
TOLERANCE = 1e-6


def small_products():
    """A context in which BLAS runs on one thread. The walks below make thousands of small
    matrix-vector products, each too small to share out: waking BLAS threads for each costs
    more than it saves, 25x more on a busy 2-core machine (measured: k-center at 5,000 rows,
    0.7 s on one thread, 17.7 s with OpenBLAS's default threads)."""
    return threadpool_limits(limits=1, user_api="blas")


def tables_for(threshold: float, bits: int, miss_rate: float = MISS_RATE) -> int | None:
    """Hash tables that find a pair at cosine `threshold` in at least one bucket with
    probability 1 - miss_rate; None when that needs more than MAX_TABLES."""
    agree = 1 - math.acos(min(1.0, max(-1.0, threshold))) / math.pi
    collide = agree**bits
    if collide >= 1:
        return 1
    tables = math.ceil(math.log(miss_rate) / math.log1p(-collide))
    return tables if tables <= MAX_TABLES else None


def bucket_plan(threshold: float, capacity: int) -> tuple[int, int] | None:
    """(bits, tables) of the cheapest bucketed search for a set of up to `capacity` examples:
    a query reads `tables` buckets of about capacity / 2^bits examples each. None: no plan
    within MAX_TABLES (a low threshold), so the search is exact."""
    plans = [
        (tables * (1 + capacity / 2**bits), bits, tables)
        for bits in BITS
        if (tables := tables_for(threshold, bits)) is not None
    ]
    return min(plans)[1:] if plans else None


@dataclass(frozen=True)
class Match:
    index: int  # row of the kept example it is closest to
    similarity: float  # their cosine


class KeptSet:
    """The examples kept so far (rows of `vectors`, unit length), searchable by cosine."""

    def __init__(
        self,
        vectors: np.ndarray,
        threshold: float,
        *,
        capacity: int | None = None,
        exact: bool = False,
        seed: int = 0,
    ):
        """`capacity`: the most examples it will keep (default: all the rows)."""
        self.vectors, self.threshold = vectors, threshold
        self.kept: list[int] = []
        plan = None if exact or len(vectors) <= EXACT_BELOW else bucket_plan(threshold, capacity or len(vectors))
        self._codes: np.ndarray | None = None
        if plan is not None:
            bits, tables = plan
            self._codes = _bucket_keys(vectors, tables, bits, seed)
            self._tables = np.arange(tables)
            # Each bucket is a linked list in two arrays, not a Python list per bucket (a
            # dict of lists costs about 90 bytes a bucket, more than the embedding itself):
            # `_heads[table, key]` is the bucket's last-added row (-1: empty), and
            # `_next[row, table]` the row added to that bucket before `row`.
            self._heads = np.full((tables, 2**bits), -1, dtype=np.int32)
            self._next = np.full((len(vectors), tables), -1, dtype=np.int32)

    @property
    def bucketed(self) -> bool:
        return self._codes is not None

    def closest(self, row: int) -> Match | None:
        """The kept example most similar to `row`, if their cosine is at or above the threshold."""
        candidates = self._candidates(row)
        if not len(candidates):
            return None
        similarities = self.vectors[candidates] @ self.vectors[row]
        best = int(np.argmax(similarities))
        if similarities[best] < self.threshold - TOLERANCE:
            return None
        return Match(int(candidates[best]), float(similarities[best]))

    def add(self, row: int) -> None:
        self.kept.append(row)
        if self._codes is not None:
            keys = self._codes[row]
            self._next[row] = self._heads[self._tables, keys]
            self._heads[self._tables, keys] = row

    def _candidates(self, row: int) -> np.ndarray:
        if self._codes is None:
            return np.asarray(self.kept, dtype=np.int64)
        # Walk every table's bucket at once, one link a step: as many steps as the longest bucket.
        tables, rows = self._tables, self._heads[self._tables, self._codes[row]]
        found = []
        while True:
            filled = rows >= 0
            tables, rows = tables[filled], rows[filled]
            if not len(rows):
                break
            found.append(rows)
            rows = self._next[rows, tables]
        # A row found in several tables is compared more than once: cheaper than np.unique's sort.
        return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


def _bucket_keys(vectors: np.ndarray, tables: int, bits: int, seed: int, block: int = 8192) -> np.ndarray:
    """Per row and table, the integer whose bits are the signs of `bits` random projections.
    Projected a block of rows at a time, so memory stays one block's worth."""
    planes = np.random.default_rng(seed).standard_normal((vectors.shape[1], tables * bits)).astype(np.float32)
    powers = (1 << np.arange(bits, dtype=np.uint16)).reshape(1, 1, bits)  # keys of up to 16 bits
    keys = np.empty((len(vectors), tables), dtype=np.uint16)
    for start in range(0, len(vectors), block):
        signs = (vectors[start : start + block] @ planes > 0).reshape(-1, tables, bits)
        keys[start : start + block] = (signs * powers).sum(axis=2, dtype=np.uint16)
    return keys
