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
from importlib import resources
from pathlib import Path

import yaml

from selectit.errors import ParamsError

TEMPLATES = ("plain", "chat")
# Where the rating prompt sits: before the example (the paper's), or after it, so that
# all prompts of one example share the example's tokens and the engine runs them once.
PROMPT_FIRST, EXAMPLE_FIRST = "prompt-first", "example-first"
LAYOUTS = (PROMPT_FIRST, EXAMPLE_FIRST)


def _packaged(name: str):
    return resources.files("selectit.rating") / "prompt_sets" / f"{name}.yaml"


def is_packaged_prompt_set(name: str) -> bool:
    return "/" not in name and _packaged(name).is_file()


def load_prompt_set(name_or_path: str) -> list[str]:
    """Prompts of a packaged set (`default`) or of a YAML file with a `prompts:` list."""
    source = _packaged(name_or_path) if is_packaged_prompt_set(name_or_path) else Path(name_or_path)
    if not source.is_file():
        raise ParamsError(f"prompt set {name_or_path!r} is neither a packaged set nor a YAML file")
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"{source}: not valid YAML: {exc}") from exc
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ParamsError(f"{source}: expected a mapping with a non-empty `prompts:` list of strings")
    return prompts


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
        if self.layout == EXAMPLE_FIRST:
            return example_parts(instruction, input) + response + "\n\n" + prompt.strip()
        return request_parts(prompt, instruction, input) + response


def example_parts(instruction: str, input: str) -> str:
    """The example's part of the request before its response (no rating prompt)."""
    parts = [f"### Instruction:\n{instruction}"]
    if input.strip():
        parts.append(f"### Input:\n{input}")
    parts.append("### Response:\n")
    return "\n\n".join(parts)


def request_parts(prompt: str, instruction: str, input: str) -> str:
    """Everything of the (prompt-first) rating request that comes before the response text."""
    return prompt.strip() + "\n\n" + example_parts(instruction, input)
