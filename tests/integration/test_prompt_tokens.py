"""Rating texts on a real tokenizer: the example-first layout shares the example's tokens across prompts."""

from __future__ import annotations

from selectit.rating.prompts import RatingPrompts

CUE = "\n\nRating: "


def test_example_first_texts_of_one_example_share_its_tokens(tiny_model):
    from transformers import AutoTokenizer

    from selectit.core.records import Example
    from selectit.rating.batching import shared_prefix_groups
    from selectit.rating.prompts import example_parts
    from selectit.rating.texts import RatingTextEncoder

    example = Example("x", "Name a primary colour.", "", "Red is a primary colour of paint.", "t", 1, "alpaca", {})
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)

    def texts(layout: str) -> list[list[int]]:
        prompts = RatingPrompts.from_set(
            prompt_set="default", num_prompts=3, template="plain", cue=CUE, k=5, layout=layout
        )
        encoder = RatingTextEncoder(tokenizer, prompts, 512, "tiny")
        return [encoder.encode([example], p)[0].ids for p in prompts.prompts]

    # Example-first: the three prompts' texts form one group that shares the whole example
    # (all but its last token or so, which can merge with the separator after it).
    ((prefix, members),) = shared_prefix_groups(texts("example-first"), 16)
    example_tokens = len(tokenizer(example_parts(example.instruction, "") + example.output)["input_ids"])
    assert members == [0, 1, 2] and prefix >= example_tokens - 1
    # Prompt-first: each prompt opens its texts, so nothing is shared across prompts.
    assert [len(m) for _, m in shared_prefix_groups(texts("prompt-first"), 16)] == [1, 1, 1]
