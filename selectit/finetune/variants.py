"""The training sets of the fine-tuning variants.

All variants but `full` and `base` have the selection's size, so a difference
between them is a difference of which examples, not how many:
- selectit: the selection (select stage, top R% by model-level score);
- random: the same number drawn at random (seeded) from the training pool;
- length: the same number with the longest responses (the `length` selector;
  SelectIT favours long responses, and this tells whether it does more than that);
- ifd, learned: the same number ranked by those selectors (docs/guides/selectors.md),
  from the scores the select stage wrote (method_scores.parquet);
- bottom: the same number with the lowest scores (if the score carries signal,
  top beats bottom);
- selectit-diverse, selectit-kcenter: the ranking's selection by the repr filter and by
  k-center (select.diversity's modes, docs/guides/diversity.md), from the select stage's
  by_diversity/ files, whatever select.diversity says; they need the embeddings;
- full: the whole training pool;
- base: nothing; the base model untuned, as a floor.

The training pool is the validated examples not held out (validate.heldout):
none of the variants ever sees a held-out example.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from selectit.config import DIVERSITY_VARIANTS
from selectit.core.errors import InputError
from selectit.core.records import Example
from selectit.selection.methods import MODEL_METHODS, method_ranking


@dataclass(frozen=True)
class VariantData:
    name: str
    examples: list[Example]  # in the pool's order (the trainer shuffles, seeded)


def variant_examples(
    name: str,
    pool: Sequence[Example],
    ranked_ids: Sequence[str],
    selected_ids: Sequence[str],
    seed: int,
    method_scores: Mapping[str, Mapping[str, float]] | None = None,
) -> VariantData:
    """`ranked_ids`: scored example ids best first (aggregate); `selected_ids`: the selection
    (for a diversity variant, its diversity mode's selection); `method_scores`: selector ->
    example id -> score, for the ifd and learned variants."""
    size = len(selected_ids)
    by_id = {e.id: e for e in pool}
    if name == "selectit" or name in DIVERSITY_VARIANTS:
        chosen = set(selected_ids)
    elif name == "bottom":
        chosen = set(ranked_ids[len(ranked_ids) - size :]) if size else set()
    elif name == "random":
        chosen = {e.id for e in random.Random(seed).sample(list(pool), min(size, len(pool)))}
    elif name == "length":
        # Ties broken by id, so the choice does not depend on row order.
        chosen = {e.id for e in sorted(pool, key=lambda e: (-len(e.output), e.id))[:size]}
    elif name in MODEL_METHODS:
        if not method_scores or name not in method_scores:
            raise InputError(
                f"variant {name!r}: the select stage wrote no {name} scores (method_scores.parquet); "
                "re-run the select stage with the variant in finetune.variants"
            )
        chosen = set(method_ranking(name, selectit_ranked=ranked_ids, scores=method_scores[name])[:size])
    elif name == "full":
        chosen = set(by_id)
    elif name == "base":
        chosen = set()
    else:
        raise ValueError(f"unknown variant {name!r}")
    missing = chosen - set(by_id)
    if missing:
        raise InputError(
            f"variant {name!r}: {len(missing)} of its examples (first: {sorted(missing)[0]}) are not in the "
            "training pool; the selection and the validated data come from different runs; re-run the pipeline"
        )
    examples = [e for e in pool if e.id in chosen]
    if not examples and name != "base":
        # The trainer would fail deep inside its data loader (StopIteration); say why here.
        why = (
            "the training pool (validated examples not held out) is empty"
            if name == "full" or not pool
            else f"the selection (selected_ids.txt) holds {size} examples"
            if name == "selectit"
            else f"it takes as many examples as the selection (selected_ids.txt), which holds {size}"
        )
        raise InputError(
            f"finetune variant {name!r} has no examples to train on: {why}; nothing was trained. Select more "
            "(select.ratio, more input rows) or leave the variant out of finetune.variants"
        )
    return VariantData(name, examples)
