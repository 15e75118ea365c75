"""The hygiene pass of the validate stage: benchmark decontamination, near-duplicates, and
texts that address the rater (rejected, or kept and flagged: hygiene.rater_injection).

It runs over the examples that passed the suite, in input order, before the
held-out split: a contaminated example is never scored, selected, trained on or
held out, and two near-duplicates never land on both sides of the split. Each
removed example becomes a reject whose reason names what it matched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from selectit.config import HygieneConfig
from selectit.core.records import Example, Reject
from selectit.hygiene.benchmark_texts import iter_benchmark_texts
from selectit.hygiene.decontamination import BenchmarkNgrams
from selectit.hygiene.injection import FLAG, addresses_rater
from selectit.hygiene.near_duplicates import NearDuplicateFilter


@dataclass
class HygieneResult:
    rejects: dict[str, Reject] = field(default_factory=dict)  # by example id
    contaminated: Counter = field(default_factory=Counter)  # benchmark -> examples removed
    near_duplicates: int = 0
    addresses_rater: dict[str, str] = field(default_factory=dict)  # example id -> the passage, for kept examples


def example_text(example: Example) -> str:
    """What is compared: instruction, input and response, as the example reads."""
    return "\n".join(part for part in (example.instruction, example.input, example.output) if part)


def clean(examples: Iterable[Example], cfg: HygieneConfig, benchmarks_dir: Path, progress: bool) -> HygieneResult:
    """The examples to remove, with their reasons; the caller streams `examples` in input order."""
    result = HygieneResult()
    if not (cfg.decontaminate or cfg.near_duplicates or cfg.rater_injection != "off"):
        return result
    ngrams = BenchmarkNgrams(iter_benchmark_texts(benchmarks_dir), cfg.ngram) if cfg.decontaminate else None
    dedup = (
        NearDuplicateFilter(cfg.jaccard, cfg.minhash_permutations, cfg.shingle_words) if cfg.near_duplicates else None
    )
    for example in tqdm(examples, desc="hygiene", unit="example", disable=not progress):
        text = example_text(example)
        hit = ngrams.find(text) if ngrams else None
        if hit is not None:
            result.contaminated[hit.benchmark] += 1
            result.rejects[example.id] = _reject(example, hit.reason)
            continue
        duplicate = dedup.check(example.id, text) if dedup else None
        if duplicate is not None:
            result.near_duplicates += 1
            result.rejects[example.id] = _reject(example, duplicate.reason)
            continue
        passage = addresses_rater(text) if cfg.rater_injection != "off" else None
        if passage is not None and cfg.rater_injection == "reject":
            result.rejects[example.id] = _reject(example, f"{FLAG}: {passage!r} (hygiene.rater_injection)")
        elif passage is not None:
            result.addresses_rater[example.id] = passage
    return result


def _reject(example: Example, reason: str) -> Reject:
    return Reject(source=example.source, row=example.row, line=None, reason=reason, raw=example.raw)
