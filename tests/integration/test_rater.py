"""The transformers rater on a tiny random Llama with a real tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TINY_ROWS, tiny_examples

from selectit.rating import dtypes
from selectit.rating.batching import shared_prefix_groups
from selectit.rating.dtypes import resolve_dtype
from selectit.rating.engine import MIN_SHARED_PREFIX, TransformersRater
from selectit.rating.models import ModelSource
from selectit.rating.prompts import RatingPrompts
from selectit.rating.texts import DigitTokenError, EncodedText, RatingTextEncoder, RatingTextError


def _prompts(**changes) -> RatingPrompts:
    settings = dict(prompt_set="default", num_prompts=2, template="plain", cue="\n\nRating: ", k=5)
    settings.update(changes)
    return RatingPrompts.from_set(**settings)


@pytest.fixture(scope="module")
def rater(tiny_model) -> TransformersRater:
    return TransformersRater(ModelSource("tiny", str(tiny_model)), "float32", "cpu")


@pytest.fixture(scope="module")
def encoded(rater) -> tuple[list[list[int]], list[int]]:
    encoder = RatingTextEncoder(rater.tokenizer, _prompts(), 512, "tiny")
    texts = [t.ids for p in encoder.prompts.prompts for t in encoder.encode(tiny_examples(), p)]
    return texts, encoder.digit_token_ids()


def test_scores_do_not_depend_on_batch_composition(rater, encoded):
    texts, digits = encoded
    assert len({len(t) for t in texts}) > 3  # lengths differ, so batches are padded
    # Each prompt's texts share a cached prefix, so that path is the one under test.
    assert all(prefix >= MIN_SHARED_PREFIX for prefix, _ in shared_prefix_groups(texts, MIN_SHARED_PREFIX))
    one_by_one = rater.rate(texts, digits, token_budget=1, progress=False)
    batched = rater.rate(texts, digits, token_budget=10_000, progress=False)
    np.testing.assert_allclose(batched.probs, one_by_one.probs, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(batched.top_is_digit, one_by_one.top_is_digit)


def test_probabilities_equal_a_plain_full_sequence_forward(rater, encoded):
    texts, digits = encoded
    got = rater.rate(texts, digits, token_budget=4096, progress=False).probs
    with torch.no_grad():
        for ids, row in zip(texts, got, strict=True):
            logits = rater.model(torch.tensor([ids])).logits[0, -1]
            expected = torch.softmax(logits.float(), -1)[digits].double().numpy()
            np.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-7)


def test_out_of_memory_halves_the_batch_and_gives_the_same_result(rater, encoded, monkeypatch):
    texts, digits = encoded
    expected = rater.rate(texts, digits, token_budget=10_000, progress=False).probs
    real_forward = rater._forward
    tried, done = [], []

    def forward_that_fits_two(batch, *rest):
        tried.append(len(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("simulated")
        done.append(len(batch))
        return real_forward(batch, *rest)

    monkeypatch.setattr(rater, "_forward", forward_that_fits_two)
    got = rater.rate(texts, digits, token_budget=10_000, progress=False).probs
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
    # One batch per prompt group at first (6 texts); out-of-memory batches split until they fit.
    assert tried[:3] == [6, 3, 1] and max(done) <= 2 and sum(done) == len(texts)


def test_parameter_count_comes_from_the_loaded_model(rater):
    assert rater.n_params == sum(p.numel() for p in rater.model.parameters())
    assert rater.context_length == 512


def test_digit_tokens_are_found_in_context(rater):
    encoder = RatingTextEncoder(rater.tokenizer, _prompts(k=7), 512, "tiny")
    ids = encoder.digit_token_ids()
    assert rater.tokenizer.convert_ids_to_tokens(ids) == [str(d) for d in range(1, 8)]


def test_a_digit_that_is_not_one_token_stops_with_the_model_and_digit(rater):
    # SmolLM2's tokenizer merges a trailing " \n" differently once a digit follows.
    encoder = RatingTextEncoder(rater.tokenizer, _prompts(cue="\nThe answer is: \n"), 512, "tiny")
    with pytest.raises(DigitTokenError, match=r"model 'tiny': the digit '1'"):
        encoder.digit_token_ids()


def test_long_text_is_shortened_inside_the_response(rater):
    long = {"instruction": "Summarise the text.", "input": "", "output": "word " * 400}
    encoder = RatingTextEncoder(rater.tokenizer, _prompts(), 120, "tiny")
    (result,) = encoder.encode(tiny_examples([long]), encoder.prompts.prompts[0])
    assert isinstance(result, EncodedText) and result.truncated
    assert len(result.ids) <= 120
    text = rater.tokenizer.decode(result.ids)
    assert "Summarise the text." in text and text.endswith("\n\nRating: ")


def test_text_that_cannot_fit_is_an_error_for_that_row_only(rater):
    rows = [{"instruction": "long " * 300, "input": "", "output": "ok"}, TINY_ROWS[0]]
    encoder = RatingTextEncoder(rater.tokenizer, _prompts(), 120, "tiny")
    first, second = encoder.encode(tiny_examples(rows), encoder.prompts.prompts[0])
    assert isinstance(first, RatingTextError) and "120 tokens" in str(first)
    assert isinstance(second, EncodedText) and not second.truncated


def test_chat_template_wraps_the_request_and_ends_with_the_cue(rater):
    encoder = RatingTextEncoder(rater.tokenizer, _prompts(template="chat"), 512, "tiny")
    (result,) = encoder.encode(tiny_examples()[:1], encoder.prompts.prompts[0])
    text = rater.tokenizer.decode(result.ids)
    assert text.startswith("<|im_start|>") and "Name a primary colour." in text
    assert text.endswith("<|im_start|>assistant\nRating: ")
    assert len(encoder.digit_token_ids()) == 5


def test_auto_dtype_follows_the_hardware(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(dtypes, "cpu_has_native_bf16", lambda: True)
    assert resolve_dtype("auto", cpu) == "bfloat16"
    monkeypatch.setattr(dtypes, "cpu_has_native_bf16", lambda: False)
    assert resolve_dtype("auto", cpu) == "float32"
    assert resolve_dtype("float16", cpu) == "float16"
    with pytest.raises(ValueError, match="dtype must be"):
        resolve_dtype("int8", cpu)


def test_mixed_bf16_stays_close_to_fp32(tiny_model, encoded):
    texts, digits = encoded
    fp32 = TransformersRater(ModelSource("tiny", str(tiny_model)), "float32", "cpu")
    mixed = TransformersRater(ModelSource("tiny", str(tiny_model)), "bfloat16", "cpu")
    reference = fp32.rate(texts, digits, 4096, progress=False).probs
    got = mixed.rate(texts, digits, 4096, progress=False).probs
    # bf16 matmuls move probabilities slightly; the fp32 LM head keeps it small.
    np.testing.assert_allclose(got, reference, atol=5e-3)
    assert not np.array_equal(got, reference)  # the bf16 path really ran
