"""Do the raters answer with a rating at all? Per rater and prompt, on the audited texts.

A rater whose next-token probability mostly falls outside the digits 1..K is
not rating, whatever its agreement says; the ratings table carries what shows
it (`mass`, `top_is_digit`, as the score stage reports per rater).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class Validity:
    rater: str
    prompt: int
    texts: int  # rating texts (responses) of this rater and prompt
    digit_mass: float  # mean probability on the digits 1..K
    top_is_digit_share: float  # share of texts whose most likely next token is one of those digits
    truncated: int  # texts whose response was shortened to fit the context

    def to_dict(self) -> dict:
        return asdict(self)


def rating_validity(ratings: pa.Table) -> list[Validity]:
    models = np.asarray(ratings["model"].to_pylist(), dtype=object)
    prompts = ratings["prompt_id"].to_numpy()
    mass = ratings["mass"].to_numpy()
    top = ratings["top_is_digit"].to_numpy(zero_copy_only=False)
    truncated = ratings["truncated"].to_numpy(zero_copy_only=False)
    rows = []
    for rater in dict.fromkeys(models):  # first-appearance order: the order of score.raters
        for prompt in np.unique(prompts):
            mask = (models == rater) & (prompts == prompt)
            if mask.any():
                rows.append(
                    Validity(
                        rater=str(rater),
                        prompt=int(prompt),
                        texts=int(mask.sum()),
                        digit_mass=float(mass[mask].mean()),
                        top_is_digit_share=float(top[mask].mean()),
                        truncated=int(truncated[mask].sum()),
                    )
                )
    return rows
