"""Preference accuracy: did fine-tuning move the model towards the response a judge preferred?

For a judged pair (instruction x, preferred response y_w, other response y_l), the gain of
a response is how much more likely the tuned model finds it than the base model does, per
response token:

    gain(y) = NLL_base(y | x) - NLL_tuned(y | x)      (mean over y's tokens, in nats)

which is DPO's implicit reward, log pi(y|x) - log pi_ref(y|x) (arXiv 2305.18290), taken
per token so that long and short responses weigh alike. The tuned model prefers y_w when
gain(y_w) > gain(y_l): the pair scores 1; 0 when gain(y_w) < gain(y_l); 0.5 on an exact tie.
The `base` variant is the reference of the gain (both gains are 0), so it scores 0.5 on
every pair: the chance line the other variants are read against.

The per-token NLLs come from the held-out loss's code (heldout.py), on the same Alpaca
prompt and the same cut at finetune.max_length. The base model's NLLs are the same for
every variant: they are computed once and cached by the base model's content id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from selectit.audit.pairs import SIDES, JudgedPair, pair_examples
from selectit.core.io import write_json
from selectit.core.records import Example
from selectit.evaluation.heldout import heldout_nll

TIE = 0.5  # an exact tie (the base model, or an adapter that did not move): neither response preferred


def pair_score(gain_preferred: float, gain_other: float) -> float:
    """1 when the preferred response gained more, 0 when the other did, 0.5 on a tie."""
    if gain_preferred > gain_other:
        return 1.0
    if gain_preferred < gain_other:
        return 0.0
    return TIE


def pair_scores(
    pairs: Sequence[JudgedPair], tuned_nll: Mapping[str, float], base_nll: Mapping[str, float]
) -> list[float]:
    """One score per pair from per-response NLLs keyed by response example id (`response_examples`)."""
    scores = []
    for pair in pairs:
        gain = {side: base_nll[pair.example_id(side)] - tuned_nll[pair.example_id(side)] for side in SIDES}
        scores.append(pair_score(gain[pair.preferred], gain[pair.other]))
    return scores


def response_examples(pairs: Sequence[JudgedPair]) -> list[Example]:
    """Each response once, as an example (instruction, input, response) keyed by its content id;
    longest first, so that each forward pass holds texts of about the same length (less padding)."""
    examples = pair_examples(pairs, "preference pairs")
    return sorted(examples, key=lambda e: -len(e.instruction) - len(e.input) - len(e.output))


NllFunction = Callable[[Sequence[Example]], dict[str, float]]


def nll_with(model, tokenizer, *, batch_size: int, max_length: int, progress: bool) -> NllFunction:
    """Per-token response NLL of examples under one model, by example id."""

    def nll(examples: Sequence[Example]) -> dict[str, float]:
        if not examples:
            return {}
        ids, scores = heldout_nll(
            model, tokenizer, examples, batch_size=batch_size, max_length=max_length, progress=progress
        )
        return dict(zip(ids, scores, strict=True))

    return nll


@dataclass(frozen=True)
class BaseNllCache:
    """The base model's per-token NLL of each response, kept in one JSON file per base model and
    max_length (the cut changes the tokens scored); a new response is scored and added."""

    folder: Path
    base_model_id: str  # the base model's content id (rating.models.resolve)
    max_length: int

    @property
    def path(self) -> Path:
        key = hashlib.sha256(f"{self.base_model_id}\0{self.max_length}".encode()).hexdigest()[:16]
        return Path(self.folder) / f"base_nll_{key}.json"

    def read(self) -> dict[str, float]:
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}  # no cache yet, or one cut short: score again
        return stored.get("nll", {}) if stored.get("base_model_id") == self.base_model_id else {}

    def lookup(self, examples: Sequence[Example], compute: Callable[[], NllFunction]) -> dict[str, float]:
        """The base NLL of every example; `compute()` gives the base model's NLL function, asked
        for (and so the base model loaded) only when some example is not cached."""
        known = self.read()
        missing = [e for e in examples if e.id not in known]
        if missing:
            known.update(compute()(missing))
            write_json(self.path, {"base_model_id": self.base_model_id, "max_length": self.max_length, "nll": known})
        return {e.id: known[e.id] for e in examples}


def preference_accuracy(
    pairs: Sequence[JudgedPair], tuned: NllFunction | None, base: NllFunction
) -> tuple[list[str], list[float]]:
    """(pair ids, one score per pair). `tuned` None: the model evaluated is the base model (all ties)."""
    examples = response_examples(pairs)
    base_nll = base(examples)
    tuned_nll = base_nll if tuned is None else tuned(examples)
    return [p.pair_id for p in pairs], pair_scores(pairs, tuned_nll, base_nll)
