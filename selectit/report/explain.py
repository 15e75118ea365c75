"""`selectit explain ID`: what every rater read and answered for one example.

For each rater of params.yaml and each rating prompt: the exact rating text (built
as `selectit show-prompts` builds it, with the rater's tokenizer; no model runs)
and the digit distribution stored in that rater's ratings.parquet, with the
token-level score computed from it. Then the example's sentence and model scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.compute as pc

from selectit.config import Params, ScoreConfig
from selectit.core.catalog import rater_name
from selectit.core.errors import InputError
from selectit.core.layout import Layout
from selectit.core.records import Example, read_example_records
from selectit.core.stages import Stage
from selectit.rating.models import load_tokenizer, resolve
from selectit.rating.prompts import RatingPrompts
from selectit.rating.texts import RatingTextEncoder
from selectit.rating_params import rating_settings
from selectit.scoring.formulas import normalise_digit_probs
from selectit.scoring.tables import SENTENCE_PREFIX, read_ratings, read_scores, with_token_scores
from selectit.summaries import require_selection_stages


@dataclass
class RatingTexts:
    """A rater's tokenizer and rating-text encoder: what `show-prompts` and `explain` print."""

    name: str
    tokenizer: object
    encoder: RatingTextEncoder
    prompts: RatingPrompts

    def header(self) -> str:
        digits = self.tokenizer.convert_ids_to_tokens(self.encoder.digit_token_ids())
        return (
            f"# rater {self.name}, template {self.prompts.template}, prompt version {self.prompts.version}, "
            f"digit tokens {digits}"
        )

    def texts(self, example: Example, prompt_id: int) -> str:
        """The rating text as the rater reads it, with a line about its length; `|` marks its end."""
        (encoded,) = self.encoder.encode([example], self.prompts.prompts[prompt_id])
        if not hasattr(encoded, "ids"):
            return f"[cannot be rated: {encoded}]"
        flag = ", truncated" if encoded.truncated else ""
        return (
            f"[{len(encoded.ids)} tokens{flag}; the rating digit is read right after the last character]\n"
            f"{self.tokenizer.decode(encoded.ids)}|"
        )


def rating_texts(spec: str, score: ScoreConfig) -> RatingTexts:
    """Load a rater's tokenizer (not its weights) and the encoder of the rating prompts."""
    from transformers import AutoConfig

    # torch: the engine module loads it; explain without texts and the report need neither.
    from selectit.rating.engine import config_context_length

    rating = rating_settings(score)
    source = resolve(spec, rating.trust_remote_code)
    tokenizer = load_tokenizer(source, rating.trust_remote_code)
    context = config_context_length(
        AutoConfig.from_pretrained(source.location, trust_remote_code=rating.trust_remote_code)
    )
    prompts = rating.prompts()
    encoder = RatingTextEncoder(tokenizer, prompts, min(rating.max_length or context, context), source.name)
    return RatingTexts(source.name, tokenizer, encoder, prompts)


def find_example(layout: Layout, example_id: str) -> tuple[Example, bool]:
    """The example with this id, and whether it was held out (never rated)."""
    for path, held_out in ((layout.examples(layout.validated), False), (layout.heldout, True)):
        if path.is_file():
            for example in read_example_records(path):
                if example.id == example_id:
                    return example, held_out
    raise InputError(f"{example_id}: no such example id in {layout.validated} (ids are in scores.parquet)")


def explain(params: Params, layout: Layout, example_id: str, with_texts: bool = True) -> Iterator[str]:
    """The explanation, line by line (texts need each rater's tokenizer; `with_texts=False` skips them)."""
    require_selection_stages(layout, [rater_name(r) for r in params.score.raters], through=Stage.SCORE)
    example, held_out = find_example(layout, example_id)
    yield f"# example {example.id} ({example.source} row {example.row})"
    if held_out:
        yield "held out for the held-out loss: never rated"
        return
    k = params.score.k
    for spec in params.score.raters:
        name = rater_name(spec)
        ratings = with_token_scores(read_ratings(layout.ratings_table(name)), params.aggregate)
        mine = ratings.filter(pc.equal(ratings["example_id"], example_id)).to_pylist()
        texts = rating_texts(spec, params.score) if with_texts else None
        yield ""
        yield texts.header() if texts else f"# rater {name}"
        for row in sorted(mine, key=lambda r: r["prompt_id"]):
            prompt_id = row["prompt_id"]
            yield f"\n===== rater {name}, prompt {prompt_id} ====="
            if texts:
                yield texts.texts(example, prompt_id)
            normalised = normalise_digit_probs(row["probs"], params.aggregate.authors_softmax)
            yield "answered (raw P of each digit; normalised over the digits):"
            for digit in range(1, k + 1):
                p, q = row["probs"][digit - 1], normalised[digit - 1]
                yield f"  {digit}: {p:.4f}  {q:.4f}  {'#' * round(q * 40)}"
            yield (
                f"digit mass {row['mass']:.4f}; most likely next token a digit: {row['top_is_digit']}; "
                f"token-level score ({params.aggregate.token_score}) {row['token_score']:.4f}"
            )
        if not mine:
            yield "no stored rating (the rater could not read this example; see its rejects.jsonl)"
    scores = read_scores(layout.scores_table).to_pandas()
    row = scores[scores["example_id"] == example_id]
    if len(row):
        row = row.iloc[0]
        per_rater = ", ".join(
            f"{rater_name(s)} {row[SENTENCE_PREFIX + rater_name(s)]:.4f}" for s in params.score.raters
        )
        selected = example_id in set(layout.selected_ids.read_text().split()) if layout.selected_ids.is_file() else None
        yield ""
        yield f"sentence-level scores: {per_rater} (alpha {params.aggregate.alpha})"
        yield f"model-level score {row['model_score']:.4f}, rank {int(row['rank'])} of {len(scores)}"
        yield f"selected: {selected}"
