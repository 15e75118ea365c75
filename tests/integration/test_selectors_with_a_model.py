"""The model-based selectors on the tiny random Llama: `ifd` as the select stage computes it,
an example too long for the IFD model's context, and the `learned` model fitted on judged pairs."""

from __future__ import annotations

import pytest
from helpers import TINY_ROWS, tiny_examples, tiny_llama, write_pairs

from selectit.audit.learned import IfdSpec, LearnedSpec, fit_learned, ifd_of, learned_scores
from selectit.core.errors import InputError
from selectit.rating import ifd
from selectit.rating.rate import rate_examples
from selectit.rating.settings import RatingSettings


def _rating() -> RatingSettings:
    return RatingSettings(
        prompt_set="default",
        num_prompts=2,
        template="plain",
        layout="prompt-first",
        cue="\n\nRating: ",
        k=5,
        dtype="float32",
        device="cpu",
        token_budget=4096,
        shard_size=4,
        max_length=None,
        trust_remote_code=False,
        compile=False,
    )


def test_the_ifd_selector_equals_a_direct_computation_for_one_example(tmp_path, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    example = tiny_examples()[1]  # with an input
    result = ifd_of([example], IfdSpec(str(tiny_model), 400), _rating(), tmp_path, progress=False)

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    response = tokenizer(example.output, add_special_tokens=False)["input_ids"]
    prompt = tokenizer(ifd.alpaca_prompt(example.instruction, example.input), add_special_tokens=False)["input_ids"]

    def mean_loss(context: list[int]) -> float:
        ids = torch.tensor([[start, *context, *response]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(context) : len(context) + len(response)]
        return float(torch.nn.functional.cross_entropy(logits.float(), torch.tensor(response)))

    assert result.scores[example.id] == pytest.approx(mean_loss(prompt) / mean_loss([]), rel=1e-4)
    assert result.rejects == []


def test_an_example_too_long_for_the_ifd_models_context_is_unrated_with_the_reason(tmp_path, smollm2_folder):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder)
    short = tiny_llama(tokenizer, max_position_embeddings=60)
    folder = tmp_path / "short-context"
    short.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    long_row = {"instruction": "Repeat the word. " * 30, "input": "", "output": "word " * 10}
    examples = tiny_examples([TINY_ROWS[0], long_row])
    result = ifd_of(examples, IfdSpec(str(folder), 400), _rating(), tmp_path / "cache", progress=False)
    assert set(result.scores) == {e.id for e in examples}  # listed, never dropped
    assert result.scores[examples[0].id] > 0 and result.scores[examples[1].id] != result.scores[examples[1].id]
    (reject,) = result.rejects
    assert reject.row == examples[1].row and "the model's context is 60" in reject.reason
    assert reject.reason.startswith("ifd (short-context): too long for IFD")


def test_an_interrupted_ifd_pass_resumes_from_its_cached_chunks(tmp_path, tiny_model, monkeypatch):
    examples = tiny_examples()
    spec = IfdSpec(str(tiny_model), 400)
    whole = ifd_of(examples, spec, _rating(), tmp_path / "whole", progress=False).scores
    monkeypatch.setattr(ifd, "CHUNK", 2)  # 6 examples: three chunks
    computed = []
    losses = ifd.ResponseLossModel.losses

    def stopped_after_two_chunks(self, chunk):
        if len(computed) == 2:
            raise KeyboardInterrupt
        computed.append(len(chunk))
        return losses(self, chunk)

    monkeypatch.setattr(ifd.ResponseLossModel, "losses", stopped_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        ifd_of(examples, spec, _rating(), tmp_path / "resumed", progress=False)
    monkeypatch.setattr(ifd.ResponseLossModel, "losses", losses)
    run = ifd.response_losses(
        examples,
        str(tiny_model),
        tmp_path / "resumed",
        max_response_tokens=400,
        device="cpu",
        token_budget=4096,
        trust_remote_code=False,
        progress=False,
    )
    assert run.computed == len(examples) - 4  # the two finished chunks are not computed again
    assert run.losses.num_rows == len(examples)  # and no example is there twice
    assert run.scores() == pytest.approx(whole, rel=1e-6)


def _pairs(n: int) -> list[dict]:
    """`n` pairs with distinct instructions; the longer response wins in most of them."""
    rows = []
    for i in range(n):
        long, short = f"The answer to question {i} is {i * 7}, because {i} times 7 is {i * 7}.", f"{i * 7}"
        preferred = "a" if i % 4 else "b"
        rows.append(
            {
                "pair_id": f"p{i}",
                "instruction": f"What is {i} times 7?",
                "response_a": long,
                "response_b": short,
                "preferred": preferred,
            }
        )
    return rows


def test_the_learned_model_fits_on_judged_pairs_and_scores_the_pool(tmp_path, tiny_model):
    pairs = write_pairs(tmp_path / "pairs.jsonl", _pairs(12))
    spec = LearnedSpec([str(tiny_model)], _rating(), 0.2, False, True, None)
    cache = tmp_path / "cache"
    model = fit_learned(pairs, 10, spec, cache, folds=2, seed=0, exclude_ids={"p0", "p1"}, progress=False)
    assert model.pairs == 10 and model.cv_pair_ids == [f"p{i}" for i in range(2, 12)]  # p0, p1 left out
    assert model.settings["excluded_pairs"] == 2 and len(model.cv_outcomes) == 10
    assert "log_response_tokens" in model.names and "calibrated_expected.tiny-llama" in model.names

    pool = tiny_examples()
    ratings = rate_examples(pool, [str(tiny_model)], _rating(), tmp_path / "pool-cache", False).ratings
    scores = learned_scores(model, ratings, pool, spec, None)
    assert set(scores) == {e.id for e in pool} and all(s == s for s in scores.values())

    # Without the length features, and with fewer pairs than folds: one line naming the key, before rating.
    no_length = LearnedSpec([str(tiny_model)], _rating(), 0.2, False, False, None)
    model = fit_learned(pairs, None, no_length, cache, folds=2, seed=0, progress=False)
    assert not {"log_instruction_tokens", "log_response_tokens"} & set(model.names)
    fresh = tmp_path / "fresh-cache"
    with pytest.raises(InputError, match=r"select.learned_pairs: 3 usable pair\(s\)"):
        fit_learned(pairs, 3, spec, fresh, folds=5, seed=0, progress=False)
    assert not fresh.exists()  # no model ran
