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
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from selectit.selection.rows import RankedRows, row_blocks

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
    index: int  # the label (ranking position) of the kept example it is closest to
    similarity: float  # their cosine


class KeptSet:
    """The examples kept so far, searchable by cosine. It holds their vectors itself, as
    float16 with each one's length (so a cosine divides the rounding out): memory grows with
    what is kept, 2 x dim bytes an example, not with the pool asked about. A walk reads the
    pool a block at a time, takes the block's bucket keys (`keys`), and asks about each row."""

    def __init__(self, dim: int, threshold: float, *, capacity: int, pool: int, exact: bool = False, seed: int = 0):
        """`capacity`: the most examples it will keep; `pool`: how many it will be asked about
        (a small pool is searched exactly: buckets would not pay off)."""
        self.threshold = threshold
        self.kept: list[int] = []  # the kept examples' labels, in the order kept
        self._vectors = np.empty((capacity, dim), dtype=np.float16)
        self._lengths = np.empty(capacity, dtype=np.float32)
        plan = None if exact or pool <= EXACT_BELOW else bucket_plan(threshold, capacity)
        self._planes: np.ndarray | None = None
        if plan is not None:
            bits, tables = plan
            self._planes = np.random.default_rng(seed).standard_normal((dim, tables * bits)).astype(np.float32)
            self._powers = (1 << np.arange(bits, dtype=np.uint16)).reshape(1, 1, bits)  # keys of up to 16 bits
            self._tables = np.arange(tables)
            # Each bucket is a linked list in two arrays, not a Python list per bucket (a
            # dict of lists costs about 90 bytes a bucket, more than the embedding itself):
            # `_heads[table, key]` is the bucket's last-added slot (-1: empty), and
            # `_next[slot, table]` the slot added to that bucket before `slot`.
            self._heads = np.full((tables, 2**bits), -1, dtype=np.int32)
            self._next = np.full((capacity, tables), -1, dtype=np.int32)

    @property
    def bucketed(self) -> bool:
        return self._planes is not None

    def keys(self, block: np.ndarray) -> np.ndarray | None:
        """Per row of `block` and table, the integer whose bits are the signs of the table's
        random projections (None when the search is exact)."""
        if self._planes is None:
            return None
        bits = self._powers.shape[2]
        signs = (block @ self._planes > 0).reshape(len(block), -1, bits)
        return (signs * self._powers).sum(axis=2, dtype=np.uint16)

    def walk(self, rows: RankedRows) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """(position, unit row, its bucket key) for each of `rows` in ranking order, read a
        block at a time, the block's keys in one product."""
        for start, block in row_blocks(rows):
            keys = self.keys(block)
            for i, vector in enumerate(block):
                yield start + i, vector, None if keys is None else keys[i]

    def closest(self, vector: np.ndarray, key: np.ndarray | None = None) -> Match | None:
        """The kept example most similar to `vector` (unit, with its `keys` row when
        bucketed), if their cosine is at or above the threshold."""
        slots = self._candidates(key)
        if not len(slots):
            return None
        similarities = (self._vectors[slots] @ vector) / self._lengths[slots]
        best = int(np.argmax(similarities))
        if similarities[best] < self.threshold - TOLERANCE:
            return None
        return Match(self.kept[int(slots[best])], float(similarities[best]))

    def add(self, label: int, vector: np.ndarray, key: np.ndarray | None = None) -> None:
        slot = len(self.kept)
        self.kept.append(label)
        self._vectors[slot] = vector
        self._lengths[slot] = np.linalg.norm(self._vectors[slot].astype(np.float32))
        if self._planes is not None:
            self._next[slot] = self._heads[self._tables, key]
            self._heads[self._tables, key] = slot

    def _candidates(self, key: np.ndarray | None) -> np.ndarray:
        if self._planes is None:
            return np.arange(len(self.kept))
        # Walk every table's bucket at once, one link a step: as many steps as the longest bucket.
        tables, slots = self._tables, self._heads[self._tables, key]
        found = []
        while True:
            filled = slots >= 0
            tables, slots = tables[filled], slots[filled]
            if not len(slots):
                break
            found.append(slots)
            slots = self._next[slots, tables]
        # A slot found in several tables is compared more than once: cheaper than np.unique's sort.
        return np.concatenate(found) if found else np.empty(0, dtype=np.int64)
