"""Per-response scores at every level SelectIT has, from one ratings table: pure, no I/O.

Each scorer is a score per example id; the audit asks of each whether it ranks
the judge's preferred response higher.

- `model`:                 the model-level score (what `select` ranks by), via `aggregate`
- `sentence.<rater>`:      one rater's sentence-level score: SelectIT with that rater alone
- `prompt.<p>`:            the raters' token scores under prompt p alone, weighted as at model
                           level (one prompt has no spread, so this is SelectIT with that prompt alone)
- `token.<rater>.<p>`:     one rater's token-level score under one prompt
- `length`:                the response's length in characters: the baseline "longer wins"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from selectit.ingest.records import Example
from selectit.scoring import formulas
from selectit.scoring.tables import SENTENCE_PREFIX, aggregate, probs_matrix

MODEL, SENTENCE, PROMPT, TOKEN, BASELINE = "model", "sentence", "prompt", "token", "baseline"
LENGTH = "length"


@dataclass(frozen=True)
class Scorer:
    name: str  # as in the report and the metric names
    level: str  # model | sentence | prompt | token | baseline
    description: str
    scores: dict[str, float]  # example id -> score
    rater: str | None = None
    prompt: int | None = None


def selectit_scorers(
    ratings: pa.Table, alpha: float, authors_softmax: bool, weights: Mapping[str, float] | None
) -> tuple[list[Scorer], dict[str, float]]:
    """The scorers of every level from the ratings, and the normalised rater weights.

    The model and sentence levels come from `aggregate`, as the aggregate stage
    computes them; token scores are recomputed from the stored probabilities,
    so `authors_softmax` applies to them too."""
    table, normalised = aggregate(ratings, alpha, authors_softmax, weights)
    ids = table["example_id"].to_pylist()
    raters = [name[len(SENTENCE_PREFIX) :] for name in table.column_names if name.startswith(SENTENCE_PREFIX)]
    scorers = [
        Scorer(MODEL, MODEL, "SelectIT model level (the selection's ranking)", _by_id(ids, table["model_score"]))
    ]
    for rater in raters:
        scores = _by_id(ids, table[SENTENCE_PREFIX + rater])
        scorers.append(Scorer(f"{SENTENCE}.{rater}", SENTENCE, f"sentence level of {rater}", scores, rater=rater))

    token = formulas.token_scores(probs_matrix(ratings), authors_softmax)
    example_ids = np.asarray(ratings["example_id"].to_pylist(), dtype=object)
    models = np.asarray(ratings["model"].to_pylist(), dtype=object)
    prompts = ratings["prompt_id"].to_numpy()
    per_cell = {
        (rater, int(prompt)): dict(zip(example_ids[mask], token[mask].tolist(), strict=True))
        for rater in raters
        for prompt in np.unique(prompts)
        if (mask := (models == rater) & (prompts == prompt)).any()
    }
    for prompt in sorted({p for _, p in per_cell}):
        scores = {eid: sum(normalised[r] * per_cell[(r, prompt)][eid] for r in raters) for eid in ids}
        scorers.append(
            Scorer(f"{PROMPT}.{prompt}", PROMPT, f"prompt {prompt} alone, raters weighted", scores, prompt=prompt)
        )
    for (rater, prompt), scores in per_cell.items():
        scorers.append(
            Scorer(
                f"{TOKEN}.{rater}.{prompt}",
                TOKEN,
                f"token level of {rater}, prompt {prompt}",
                scores,
                rater=rater,
                prompt=prompt,
            )
        )
    return scorers, normalised


def length_scorer(examples: Sequence[Example]) -> Scorer:
    """Response length in characters: a scorer that sees nothing but length."""
    return Scorer(LENGTH, BASELINE, "response length (longer wins)", {e.id: float(len(e.output)) for e in examples})


def _by_id(ids: list[str], column: pa.ChunkedArray) -> dict[str, float]:
    return dict(zip(ids, column.to_numpy().tolist(), strict=True))
