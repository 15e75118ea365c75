"""Integration: the real SmolLM2-135M-Instruct rates a handful of real Alpaca-GPT4 examples."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from helpers import ALPACA_SAMPLE, write_params

from selectit.cli import main

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not ALPACA_SAMPLE.is_file(), reason=f"{ALPACA_SAMPLE} is not here")
def test_smollm2_scores_real_examples(tmp_path, smollm2_folder):
    params = write_params(tmp_path / "params.yaml", str(ALPACA_SAMPLE), ["smollm2-135m-instruct"], dtype="auto")
    out = tmp_path / "out"
    assert main(["--params", str(params), "score", "--limit", "6", "--out", str(out), "--no-progress"]) == 0

    ratings = pq.read_table(out / "ratings.parquet")
    assert ratings.num_rows == 6 * 2
    mass = ratings["mass"].to_numpy()
    # A real instruct model answers "Rating: " with a digit most of the time.
    assert np.all((mass > 0) & (mass <= 1 + 1e-9)) and mass.mean() > 0.5
    assert ratings["top_is_digit"].to_numpy().mean() > 0.5
    scores = pq.read_table(out / "scores.parquet")["model_score"].to_numpy()
    assert np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 5))
    manifest = json.loads((out / "manifest.json").read_text())
    (rater,) = manifest["raters"]
    assert abs(rater["n_params"] - 134.5e6) < 0.1e6  # SmolLM2-135M, counted from the loaded model

    # The engine's first rating equals a plain fp32 forward pass over the same ids.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selectit.ingest.formats import read_examples
    from selectit.rating.prompts import RatingPrompts
    from selectit.rating.texts import RatingTextEncoder

    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder)
    model = AutoModelForCausalLM.from_pretrained(smollm2_folder, dtype=torch.float32).eval()
    prompts = RatingPrompts.from_set("default", 2, "plain", "\n\nRating: ", 5)
    encoder = RatingTextEncoder(tokenizer, prompts, 8192, "smollm2")
    example = read_examples([ALPACA_SAMPLE]).examples[0]
    (encoded,) = encoder.encode([example], prompts.prompts[0])
    with torch.no_grad():
        logits = model(torch.tensor([encoded.ids])).logits[0, -1]
    expected = torch.softmax(logits, -1)[encoder.digit_token_ids()].double().numpy()
    rows = ratings.to_pylist()
    (first,) = [r for r in rows if r["example_id"] == example.id and r["prompt_id"] == 0]
    # dtype auto may run bf16 matmuls here; they keep probabilities within 0.03 of fp32.
    np.testing.assert_allclose(first["probs"], expected, atol=0.03)
