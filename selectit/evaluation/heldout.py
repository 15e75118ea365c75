"""Held-out instruction loss: the mean negative log-likelihood per response token
of the reference responses of held-out examples, under the Alpaca prompt.

The most sensitive of the measures for small models: it needs no generation and
no answer extraction, and moves with every change of the weights."""

from __future__ import annotations

from collections.abc import Sequence

from tqdm.auto import tqdm

from selectit.core.records import Example
from selectit.finetune.format import alpaca_prompt


def heldout_nll(
    model, tokenizer, examples: Sequence[Example], *, batch_size: int, max_length: int, progress: bool = True
) -> tuple[list[str], list[float]]:
    """(example ids, each example's mean NLL per response token, in nats)."""
    import torch

    rows = [_encode(tokenizer, e, max_length) for e in examples]
    device = next(model.parameters()).device
    ids, scores = [], []
    bar = tqdm(total=len(rows), desc="held-out loss", unit="ex", disable=not progress)
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        width = max(len(tokens) for tokens, _ in batch)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([tokens + [pad] * (width - len(tokens)) for tokens, _ in batch], device=device)
        attention = torch.tensor([[1] * len(t) + [0] * (width - len(t)) for t, _ in batch], device=device)
        with torch.inference_mode():
            logits = model(input_ids=input_ids, attention_mask=attention).logits.float()
        # Token t is predicted from the logits at t - 1.
        log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
        targets = input_ids[:, 1:]
        token_nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        for row, (tokens, prompt_len) in enumerate(batch):
            response = token_nll[row, prompt_len - 1 : len(tokens) - 1]
            ids.append(examples[start + row].id)
            scores.append(float(response.mean()))
        bar.update(len(batch))
    bar.close()
    return ids, scores


def _encode(tokenizer, example: Example, max_length: int) -> tuple[list[int], int]:
    """(prompt + response + end-of-text tokens, prompt length); the prompt is cut from
    the left if need be, so that at least part of the response is scored."""
    prompt = tokenizer(alpaca_prompt(example.instruction, example.input), add_special_tokens=True)["input_ids"]
    response = tokenizer(example.output, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        response = response + [tokenizer.eos_token_id]
    response = response[: max(1, max_length // 2)] if len(prompt) + len(response) > max_length else response
    prompt = prompt[-(max_length - len(response)) :]
    return prompt + response, len(prompt)
