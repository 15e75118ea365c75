"""Contextual calibration of the digit distributions: what a rater says about nothing.

A small rater leans towards some digits whatever it reads. Its rating of a
content-free input (the same rating prompt around a placeholder instruction
and response) shows that lean; dividing each rating by it and renormalising
(`formulas.calibrate`) leaves what the example itself moves. The content-free
inputs are rated like any example, through the shard cache, so they cost a few
rating texts per rater and prompt once, and nothing on a re-run.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from selectit.core.records import Example, example_id
from selectit.scoring import formulas
from selectit.scoring.tables import probs_matrix

# (instruction, response) placeholders: an empty pair, "N/A" and a mask token, as in
# contextual calibration; their mean distribution is the rater's lean.
CONTENT_FREE = (("N/A", "N/A"), ("", ""), ("[MASK]", "[MASK]"))
SOURCE = "content-free calibration input"


def content_free_examples() -> list[Example]:
    return [
        Example(
            id=example_id(instruction, "", response),
            instruction=instruction,
            input="",
            output=response,
            source=SOURCE,
            row=row,
            format="calibration",
            raw={"instruction": instruction, "output": response},
        )
        for row, (instruction, response) in enumerate(CONTENT_FREE, start=1)
    ]


def content_free_distributions(ratings: pa.Table) -> dict[tuple[str, int], np.ndarray]:
    """(rater, prompt) -> the mean normalised digit distribution over its content-free ratings
    (rows without digit mass left out)."""
    probs = formulas.normalise_digit_probs(probs_matrix(ratings))
    models = np.asarray(ratings["model"].to_pylist(), dtype=object)
    prompts = ratings["prompt_id"].to_numpy()
    lean = {}
    for rater in dict.fromkeys(models):
        for prompt in np.unique(prompts):
            rows = probs[(models == rater) & (prompts == prompt)]
            rows = rows[~np.isnan(rows).any(axis=1)]
            if len(rows):
                lean[(str(rater), int(prompt))] = rows.mean(axis=0)
    return lean


def calibrated_probs(ratings: pa.Table, lean: Mapping[tuple[str, int], np.ndarray]) -> np.ndarray:
    """Each rating's digit distribution divided by its rater's and prompt's lean, renormalised."""
    models = ratings["model"].to_pylist()
    prompts = ratings["prompt_id"].to_pylist()
    missing = sorted({(m, int(p)) for m, p in zip(models, prompts, strict=True)} - set(lean))
    if missing:
        raise ValueError(f"no content-free rating for (rater, prompt) {missing}")
    q = np.stack([lean[(m, int(p))] for m, p in zip(models, prompts, strict=True)])
    # A digit the rater never gives on content-free input would divide by zero; a floor keeps it finite.
    return formulas.calibrate(probs_matrix(ratings), np.maximum(q, 1e-12))
