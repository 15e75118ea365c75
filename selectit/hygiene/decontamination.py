"""Benchmark decontamination: an example that shares a word n-gram with a benchmark
question is not trained on (the GPT-3 paper's test, 13 words by default).

Texts are compared after normalising case, punctuation and whitespace, so a
question copied with other capitals, quotes or line breaks is still found. The
benchmarks' n-grams (a few hundred thousand) are held in memory as hashes, and
the pool streams past them: the cost grows with the pool's words, one set lookup
per word.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from selectit.hygiene.benchmark_texts import BenchmarkText

# Runs of letters and digits (any script); everything else separates words.
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The text's words, lower-cased, punctuation and whitespace dropped."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Contamination:
    benchmark: str
    index: str  # the question's place in its benchmark
    ngram: str  # the shared words, normalised

    @property
    def reason(self) -> str:
        return f"contaminated: shares the words {self.ngram!r} with {self.benchmark} question {self.index}"


def _gram_hashes(tokens: list[str], n: int) -> list[int]:
    """Python's hash of each n-gram of `tokens` (seeded per process: an index is built and
    used in one process, never stored)."""
    return [hash(tuple(tokens[start : start + n])) for start in range(len(tokens) - n + 1)]


class BenchmarkNgrams:
    """The hash of every n-gram of the benchmark texts: a set to test an example's n-grams
    against (one lookup each), and sorted arrays to name the question on a hit."""

    def __init__(self, texts: Iterable[BenchmarkText], n: int):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self.questions: list[tuple[str, str]] = []  # (benchmark, index)
        self.too_short = 0  # questions with fewer than n words: no n-gram to find
        hashes: list[int] = []
        owners: list[int] = []
        for item in texts:
            tokens = words(item.text)
            if len(tokens) < n:
                self.too_short += 1
            grams = _gram_hashes(tokens, n)
            hashes.extend(grams)
            owners.extend([len(self.questions)] * len(grams))
            self.questions.append((item.benchmark, item.index))
        self._known = set(hashes)
        # A stable sort keeps the first question first among equal hashes.
        all_hashes = np.array(hashes, dtype=np.int64)
        order = np.argsort(all_hashes, kind="stable")
        self._sorted = all_hashes[order]
        self._owners = np.array(owners, dtype=np.int32)[order]

    def __len__(self) -> int:
        return len(self._known)

    def find(self, text: str) -> Contamination | None:
        """The first n-gram of `text` that a benchmark question shares, or None."""
        tokens = words(text)
        known = self._known
        for start, gram in enumerate(_gram_hashes(tokens, self.n)):
            if gram in known:
                owner = self._owners[np.searchsorted(self._sorted, gram)]
                benchmark, index = self.questions[owner]
                return Contamination(benchmark, index, " ".join(tokens[start : start + self.n]))
        return None
