"""Turn (example, prompt) pairs into the exact token ids a rater model reads.

Also finds the token of each rating digit *in context* (the token that the cue
followed by that digit adds), so no token id is ever hard-coded per tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from selectit.core.errors import DigitTokenError
from selectit.core.records import Example
from selectit.rating.prompts import RatingPrompts

# A stand-in pair used only to tokenise the cue in its real surroundings.
_PROBE_EXAMPLE = ("Name a primary colour.", "", "Red is a primary colour.")
# Extra tokens removed per truncation retry: decoding and re-encoding a cut
# response can merge or split a token or two at the cut.
_TRUNCATION_SLACK = 8


class RatingTextError(ValueError):
    """A rating text that cannot be built for this model (the row becomes a reject)."""


@dataclass(frozen=True)
class EncodedText:
    ids: list[int]
    truncated: bool
    # Tokens [start, end) that hold the example itself (instruction to end of response): what its
    # embedding pools. None where the tokenizer gives no character offsets (a slow tokenizer).
    example_span: tuple[int, int] | None = None


class RatingTextEncoder:
    def __init__(self, tokenizer, prompts: RatingPrompts, max_length: int, model_name: str):
        self.tokenizer = tokenizer
        self.prompts = prompts
        self.max_length = max_length
        self.model_name = model_name
        if prompts.template == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"model {model_name!r} has no chat template; use template: plain for it")

    def text(self, prompt: str, instruction: str, input: str, response: str) -> str:
        return self.text_with_example_span(prompt, instruction, input, response)[0]

    def text_with_example_span(
        self, prompt: str, instruction: str, input: str, response: str
    ) -> tuple[str, tuple[int, int] | None]:
        """The rating text, and the characters of the example in it (see
        `RatingPrompts.request_with_example_span`); None where a chat template rewrites the request."""
        body, (start, end) = self.prompts.request_with_example_span(prompt, instruction, input, response)
        if self.prompts.template == "plain":
            return body + self.prompts.cue, (start, end)
        wrapped = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": body}], tokenize=False, add_generation_prompt=True
        )
        at = wrapped.find(body)
        # The cue's leading newlines separate it from the response in plain text;
        # in a chat the assistant turn already starts on its own.
        return wrapped + self.prompts.cue.lstrip("\n"), None if at < 0 else (at + start, at + end)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return self._encode_with_offsets(texts)[0]

    def _encode_with_offsets(self, texts: list[str]) -> tuple[list[list[int]], list[list[tuple[int, int]]] | None]:
        """Token ids, and each token's characters where the tokenizer can say (fast tokenizers)."""
        # Chat templates write their own BOS; plain text gets the tokenizer's.
        add_special = self.prompts.template == "plain"
        fast = getattr(self.tokenizer, "is_fast", False)
        encoded = self.tokenizer(texts, add_special_tokens=add_special, return_offsets_mapping=fast)
        return encoded["input_ids"], encoded["offset_mapping"] if fast else None

    def encode(self, examples: Sequence[Example], prompt: str) -> list[EncodedText | RatingTextError]:
        """Token ids of one prompt's rating text for each example, shortened to fit.

        An example that cannot fit even with an empty response yields a
        RatingTextError in its place, so the caller can reject that row alone.
        """
        built = [self.text_with_example_span(prompt, e.instruction, e.input, e.output) for e in examples]
        spans = [span for _, span in built]
        ids_list, offsets_list = self._encode_with_offsets([text for text, _ in built])
        encoded: list[EncodedText | RatingTextError] = []
        for index, (example, ids) in enumerate(zip(examples, ids_list, strict=True)):
            if len(ids) <= self.max_length:
                offsets = offsets_list[index] if offsets_list is not None else None
                encoded.append(EncodedText(ids, truncated=False, example_span=_token_span(offsets, spans[index])))
            else:
                encoded.append(self._truncate(example, prompt, len(ids)))
        return encoded

    def _truncate(self, example: Example, prompt: str, length: int) -> EncodedText | RatingTextError:
        """Cut the response (never the instruction or the cue) until the text fits."""
        response_ids = self.tokenizer(example.output, add_special_tokens=False)["input_ids"]
        keep = len(response_ids)
        while length > self.max_length:
            keep -= length - self.max_length + _TRUNCATION_SLACK
            if keep <= 0:
                return RatingTextError(
                    f"the rating text does not fit the context of {self.model_name!r} "
                    f"({self.max_length} tokens) even with an empty response"
                )
            response = self.tokenizer.decode(response_ids[:keep])
            text, span = self.text_with_example_span(prompt, example.instruction, example.input, response)
            (ids,), offsets = self._encode_with_offsets([text])
            length = len(ids)
        return EncodedText(ids, truncated=True, example_span=_token_span(offsets and offsets[0], span))

    def digit_token_ids(self) -> list[int]:
        """Token id of each digit 1..K as the model would write it right after the cue."""
        context = self.text(self.prompts.prompts[0], *_PROBE_EXAMPLE)
        with_digits = [context] + [context + str(d) for d in range(1, self.prompts.k + 1)]
        base, *extended = self._encode(with_digits)
        ids = []
        for digit, ext in enumerate(extended, start=1):
            if ext[: len(base)] != base or len(ext) != len(base) + 1:
                added = self.tokenizer.convert_ids_to_tokens(ext[len(base) - 1 :])
                raise DigitTokenError(
                    f"model {self.model_name!r}: the digit '{digit}' after the cue "
                    f"{self.prompts.cue!r} is not exactly one token (the text ends as {added}); "
                    "change the cue, for example so it does not end with a newline"
                )
            ids.append(ext[-1])
        return ids


def _token_span(offsets: list[tuple[int, int]] | None, chars: tuple[int, int] | None) -> tuple[int, int] | None:
    """The tokens [first, last + 1) that overlap the characters [start, end); a token that
    straddles the start (a newline merged with the first word) counts as the example's."""
    if offsets is None or chars is None:
        return None
    start, end = chars
    inside = [i for i, (a, b) in enumerate(offsets) if b > start and a < end and b > a]
    return (inside[0], inside[-1] + 1) if inside else None
