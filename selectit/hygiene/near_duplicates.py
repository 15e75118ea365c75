"""Near-duplicates by MinHash over word shingles, found with locality-sensitive hashing
(datasketch), as NeMo Curator's and data-juicer's fuzzy deduplication do.

Examples stream past in input order: each is compared with the examples kept
so far, and the first of a group of near-duplicates is kept. Only candidates
that LSH brings up are compared, by the Jaccard similarity their MinHash
signatures estimate, so the cost grows with the pool, not with its pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from datasketch import MinHash, MinHashLSH

from selectit.hygiene.decontamination import words

_SCHEME = "affine32"


def shingles(text: str, size: int) -> set[bytes]:
    """The text's runs of `size` consecutive normalised words (the whole text when shorter)."""
    tokens = words(text)
    if len(tokens) <= size:
        return {" ".join(tokens).encode("utf-8")}
    return {" ".join(tokens[start : start + size]).encode("utf-8") for start in range(len(tokens) - size + 1)}


@dataclass(frozen=True)
class NearDuplicate:
    of: str  # the id of the kept example it duplicates
    jaccard: float  # estimated from the two MinHash signatures

    @property
    def reason(self) -> str:
        return f"near-duplicate of {self.of} (estimated Jaccard {self.jaccard:.3f})"


class NearDuplicateFilter:
    """Keeps the first example of each group whose estimated Jaccard similarity is at least
    `threshold`; `check` answers for one example and remembers it when it is kept."""

    def __init__(self, threshold: float, num_perm: int, shingle_words: int, seed: int = 1):
        self.threshold, self.num_perm, self.shingle_words, self.seed = threshold, num_perm, shingle_words, seed
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        # The kept examples' signatures: num_perm 32-bit values each (datasketch's affine32 scheme,
        # named so that a change of its default cannot change which rows are kept).
        self._signatures: dict[str, np.ndarray] = {}
        self._template = MinHash(num_perm=num_perm, seed=seed, scheme=_SCHEME)  # permutations drawn once

    def signature(self, text: str) -> MinHash:
        minhash = MinHash(
            num_perm=self.num_perm, seed=self.seed, permutations=self._template.permutations, scheme=_SCHEME
        )
        minhash.update_batch(list(shingles(text, self.shingle_words)))
        return minhash

    def check(self, example_id: str, text: str) -> NearDuplicate | None:
        minhash = self.signature(text)
        best: NearDuplicate | None = None
        for candidate in self._lsh.query(minhash):
            jaccard = float(np.mean(self._signatures[candidate] == minhash.hashvalues))
            if jaccard >= self.threshold and (best is None or jaccard > best.jaccard):
                best = NearDuplicate(candidate, jaccard)
        if best is None and example_id not in self._signatures:
            self._lsh.insert(example_id, minhash)
            self._signatures[example_id] = minhash.hashvalues
        return best
