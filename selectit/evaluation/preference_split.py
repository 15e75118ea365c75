"""Which judged pairs the evaluation's preference accuracy uses, and so which pairs no
scorer may be fitted on (the `learned` selector fits on judged pairs too).

No model and no torch here, on purpose: the select stage's fitter reads the same split
before any model runs (tests/unit/test_layers.py puts this module below the model layer).

The split is seeded and stable:
- pairs are ordered by sha256(seed, instruction), ties by pair id, and the first
  `count` are the evaluation's; a larger count keeps every pair a smaller one chose,
  and the order does not depend on the order of lines in the file;
- both pairs of one instruction come next to each other in that order, and a fitter
  must leave out every pair whose instruction (with its input) is one the evaluation
  asks about, whichever file it reads: a model fitted on an instruction's other pair
  has seen the instruction and, in dev_pairs, the same text-davinci-003 response.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from selectit.audit.pairs import JudgedPair, read_pairs
from selectit.config import EvaluateConfig
from selectit.core.errors import InputError
from selectit.core.io import write_text
from selectit.core.records import Reject, write_rejects

COUNT_KEY = "evaluate.preference_pairs"
# In each variant's evaluation folder: the pair ids it was scored on, one a line, and the
# lines of the pairs file that are not usable pairs, with why (only when there are some).
PAIRS_FILE = "preference_pairs.txt"
REJECTS_FILE = "preference_rejects.jsonl"


def instruction_key(instruction: str, input: str = "") -> str:
    """What makes two pairs ask the same question: instruction and input, case and spacing aside."""
    return " ".join(f"{instruction}\n{input}".lower().split())


def _rank(pair: JudgedPair, seed: int) -> tuple[str, str]:
    digest = hashlib.sha256(f"{seed}\0{instruction_key(pair.instruction, pair.input)}".encode()).hexdigest()
    return digest, pair.pair_id


def choose_pairs(
    pairs: Sequence[JudgedPair], count: int, seed: int, source: str = "the pairs file"
) -> list[JudgedPair]:
    """The `count` pairs the evaluation scores, in their seeded order."""
    if count > len(pairs):
        raise InputError(
            f"{COUNT_KEY}: asks for {count} pairs, but {source} has {len(pairs)} usable; "
            f"lower {COUNT_KEY} (0 switches preference accuracy off) or name a larger evaluate.preference_file"
        )
    ids = [p.pair_id for p in pairs]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"{source}: pair_id {duplicate!r} names more than one pair; pair ids must be unique")
    return sorted(pairs, key=lambda p: _rank(p, seed))[:count]


@dataclass(frozen=True)
class PreferenceSplit:
    pairs: list[JudgedPair]  # the evaluation's pairs, in order
    rejects: list[Reject]  # lines of the file that are not usable pairs, with why

    @property
    def instructions(self) -> frozenset[str]:
        return frozenset(instruction_key(p.instruction, p.input) for p in self.pairs)

    def excluded_pair_ids(self, candidates: Iterable[JudgedPair]) -> set[str]:
        """Of `candidates` (the pairs a fitter reads), the ids it must not fit on."""
        asked = self.instructions
        return {p.pair_id for p in candidates if instruction_key(p.instruction, p.input) in asked}

    def fitting_pairs(self, candidates: Iterable[JudgedPair]) -> list[JudgedPair]:
        """`candidates` without the pairs the evaluation asks about: what a fitter may use."""
        asked = self.instructions
        return [p for p in candidates if instruction_key(p.instruction, p.input) not in asked]


def preference_split(cfg: EvaluateConfig) -> PreferenceSplit:
    """The evaluation's pairs under cfg (none when evaluate.preference_pairs is 0).

    This is the function a fitter of judged pairs calls, before it fits:
    `preference_split(params.evaluate).fitting_pairs(my_pairs)`."""
    if cfg.preference_pairs == 0:
        return PreferenceSplit([], [])
    read = read_pairs(Path(cfg.preference_file))
    chosen = choose_pairs(read.pairs, cfg.preference_pairs, cfg.preference_seed, source=str(cfg.preference_file))
    return PreferenceSplit(chosen, read.rejects)


def write_split(folder: Path, split: PreferenceSplit) -> None:
    """The split's pair ids (and the file's unusable lines, if any) into `folder`; with no split,
    files an earlier run left there are removed so that they do not describe this run."""
    folder = Path(folder)
    pairs, rejects = folder / PAIRS_FILE, folder / REJECTS_FILE
    if split.pairs:
        write_text(pairs, "".join(f"{p.pair_id}\n" for p in split.pairs))
    else:
        pairs.unlink(missing_ok=True)
    if split.rejects:
        write_rejects(split.rejects, rejects)
    else:
        rejects.unlink(missing_ok=True)
