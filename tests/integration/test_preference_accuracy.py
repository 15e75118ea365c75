"""Preference accuracy's gains on a tiny random Llama, against a direct forward pass."""

from __future__ import annotations

import pytest

from selectit.audit.pairs import JudgedPair
from selectit.evaluation.preference import nll_with, pair_score, preference_accuracy, response_examples

PAIR = JudgedPair("sum", "Add the numbers.", "2 and 3", "5", "2 + 3 = 5, so the answer is 5.", preferred="b", line=1)


def direct_mean_log_likelihood(model, tokenizer, pair: JudgedPair, side: str) -> float:
    """log p(response | Alpaca prompt) per response token (end-of-text included), one text per pass."""
    import torch

    from selectit.finetune.format import alpaca_prompt

    prompt = tokenizer(alpaca_prompt(pair.instruction, pair.input))["input_ids"]
    response = tokenizer(pair.response(side), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    tokens = torch.tensor([prompt + response])
    with torch.inference_mode():
        log_probs = torch.log_softmax(model(tokens).logits[0].float(), -1)
    positions = range(len(prompt), len(prompt) + len(response))
    return sum(log_probs[t - 1, tokens[0, t]].item() for t in positions) / len(response)


def test_the_gains_are_the_log_likelihood_gains_of_a_direct_forward_pass(tiny_model):
    import torch
    from helpers import tiny_llama

    from selectit.finetune.models import load_variant

    base, tokenizer = load_variant(None, str(tiny_model), torch.device("cpu"))
    tuned = tiny_llama(tokenizer, seed=1).eval()  # another set of weights stands in for a tuned variant
    sizes = {"batch_size": 2, "max_length": 1024, "progress": False}
    base_nll = nll_with(base, tokenizer, **sizes)(response_examples([PAIR]))
    tuned_nll = nll_with(tuned, tokenizer, **sizes)(response_examples([PAIR]))
    gains = {}
    for side in ("a", "b"):
        eid = PAIR.example_id(side)
        direct = direct_mean_log_likelihood(tuned, tokenizer, PAIR, side) - direct_mean_log_likelihood(
            base, tokenizer, PAIR, side
        )
        gains[side] = base_nll[eid] - tuned_nll[eid]
        assert gains[side] == pytest.approx(direct, rel=1e-4, abs=1e-5)
    assert gains["a"] != gains["b"]
    ids, scores = preference_accuracy([PAIR], nll_with(tuned, tokenizer, **sizes), nll_with(base, tokenizer, **sizes))
    assert ids == ["sum"] and scores == [pair_score(gains["b"], gains["a"])]
    assert preference_accuracy([PAIR], None, nll_with(base, tokenizer, **sizes))[1] == [0.5]
