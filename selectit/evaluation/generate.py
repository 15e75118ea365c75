"""Greedy answers of a model to instructions, in the Alpaca prompt format it was tuned on."""

from __future__ import annotations

from collections.abc import Sequence

from tqdm.auto import tqdm

from selectit.finetune.format import alpaca_prompt


def generate_answers(
    model,
    tokenizer,
    instructions: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    max_prompt_tokens: int = 1024,
    progress: bool = True,
) -> list[str]:
    """One greedy answer per instruction (decoding is deterministic, so a rerun gives the
    same text and the judge's cache is hit)."""
    import torch

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompts = [tokenizer(alpaca_prompt(text))["input_ids"][-max_prompt_tokens:] for text in instructions]
    answers: list[str] = []
    bar = tqdm(total=len(prompts), desc="answers", unit="q", disable=not progress)
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        width = max(len(p) for p in batch)
        # Left padding: every prompt ends where generation starts.
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch], device=device)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=device)
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        answers += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]
        bar.update(len(batch))
    bar.close()
    return answers
