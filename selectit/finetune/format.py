"""The Alpaca prompt format, shared by training and the held-out loss."""

from __future__ import annotations

from selectit.core.records import Example

# Stanford Alpaca's two templates: with and without an input field.
_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
_WITHOUT_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


def alpaca_prompt(instruction: str, input_text: str = "") -> str:
    template = _WITH_INPUT if input_text.strip() else _WITHOUT_INPUT
    return template.format(instruction=instruction, input=input_text)


def prompt_and_completion(example: Example) -> dict[str, str]:
    """One training row as TRL's prompt/completion data: the loss falls on the completion only."""
    return {"prompt": alpaca_prompt(example.instruction, example.input), "completion": example.output}
