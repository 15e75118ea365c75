"""Rating prompts, the rating-request layout, and the version hash that keys every score.

A rating text is: rating prompt, instruction (and input), response, answer cue.
The `plain` template sends it as raw text (the paper's form, right for base
models); the `chat` template wraps the same request in the tokenizer's chat
template as a user turn and puts the cue at the start of the assistant turn
(right for instruct models). Wrapping needs a tokenizer, so it lives in
`rating_texts.py`; this module only knows strings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from selectit.core.catalog import EXAMPLE_FIRST, PROMPT_FIRST, load_prompt_set


@dataclass(frozen=True)
class RatingPrompts:
    """The configuration that decides what a rater sees; hashed into `version`.

    Its settings (template, K, how many prompts of the set) are checked where
    params.yaml is read, in selectit/config.py."""

    prompts: tuple[str, ...]  # already formatted with K
    template: str
    cue: str
    k: int
    layout: str = PROMPT_FIRST

    @classmethod
    def from_set(
        cls, prompt_set: str, num_prompts: int, template: str, cue: str, k: int, layout: str = PROMPT_FIRST
    ) -> RatingPrompts:
        available = load_prompt_set(prompt_set)
        formatted = tuple(p.replace("{k}", str(k)) for p in available[:num_prompts])
        return cls(prompts=formatted, template=template, cue=cue, k=k, layout=layout)

    @property
    def version(self) -> str:
        """Content hash of everything that changes the rating text or its reading."""
        fields = {"prompts": self.prompts, "template": self.template, "cue": self.cue, "k": self.k}
        if self.layout != PROMPT_FIRST:  # the paper's layout hashes as it always has: its caches stay valid
            fields["layout"] = self.layout
        payload = json.dumps(fields, ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]

    def request(self, prompt: str, instruction: str, input: str, response: str) -> str:
        """The rating request before the cue, in this layout."""
        return self.request_with_example_span(prompt, instruction, input, response)[0]

    def request_with_example_span(
        self, prompt: str, instruction: str, input: str, response: str
    ) -> tuple[str, tuple[int, int]]:
        """The rating request, and the characters [start, end) that are the example's own: from
        its instruction to the end of its response (the headers between them included; the
        rating prompt, the header before the instruction and the cue left out). An example's
        embedding is pooled over these."""
        example = example_parts(instruction, input) + response
        start = len(INSTRUCTION_HEADER)
        if self.layout == EXAMPLE_FIRST:
            return example + "\n\n" + prompt.strip(), (start, len(example))
        head = prompt.strip() + "\n\n"
        return head + example, (len(head) + start, len(head) + len(example))


INSTRUCTION_HEADER = "### Instruction:\n"


def example_parts(instruction: str, input: str) -> str:
    """The example's part of the request before its response (no rating prompt)."""
    parts = [INSTRUCTION_HEADER + instruction]
    if input.strip():
        parts.append(f"### Input:\n{input}")
    parts.append("### Response:\n")
    return "\n\n".join(parts)


def request_parts(prompt: str, instruction: str, input: str) -> str:
    """Everything of the (prompt-first) rating request that comes before the response text."""
    return prompt.strip() + "\n\n" + example_parts(instruction, input)
