"""The audit command and IFD's response losses on the tiny random Llama."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from helpers import TINY_PAIRS, TINY_ROWS, write_pairs, write_params

from selectit.audit.agreement import LONGER_WINS, SHORTER_WINS
from selectit.audit.pairs import pair_examples, read_pairs
from selectit.rating import ifd


def test_audit_command_on_the_tiny_model(tmp_path, tiny_model, tiny_alpaca):
    from selectit.cli import main

    params = write_params(tmp_path / "params.yaml", str(tiny_alpaca), [str(tiny_model)])
    pairs = write_pairs(tmp_path / "pairs.jsonl", TINY_PAIRS)
    out = tmp_path / "audit"
    command = ["--params", str(params), "audit", pairs, "--out", str(out), "--limit", "10", "--no-progress"]
    command += ["--ifd-raters", str(tiny_model)]
    assert main(command) == 0
    report = json.loads((out / "audit.json").read_text())
    # Pair 4 has no response_b: rejected with its line, the other four audited.
    assert report["rejects"] == [{"line": 4, "reason": "missing field 'response_b'"}]
    assert json.loads((out / "rejects.jsonl").read_text())["line"] == 4
    assert report["pairs"] == 4 and report["unrated"] == []
    assert report["length_relations"] == {LONGER_WINS: 2, SHORTER_WINS: 2}
    scorers = {s["name"]: s for s in report["scorers"]}
    levels = ["model", "sentence.tiny-llama", "prompt.0", "prompt.1", "token.tiny-llama.0", "token.tiny-llama.1"]
    variants = ["", "expected.", "calibrated.", "calibrated_expected."]
    assert list(scorers) == [v + name for v in variants for name in levels] + [
        *(f"length_adjusted.{v}model" for v in variants),
        "ifd.tiny-llama",
        "ifd_inverse.tiny-llama",
        "rank_mean.model.with.ifd.tiny-llama",
        "rank_mean.model.with.ifd_inverse.tiny-llama",
        "rank_mean.length.with.ifd.tiny-llama",
        "rank_mean.length.with.ifd_inverse.tiny-llama",
        "length",
    ]
    # The inverse of IFD orders every pair the other way (no IFD is missing: every response has tokens).
    ifd, inverse = scorers["ifd.tiny-llama"]["all"], scorers["ifd_inverse.tiny-llama"]["all"]
    assert (ifd["wins"], ifd["losses"]) == (inverse["losses"], inverse["wins"])
    # Calibration read each rater's and prompt's lean from the content-free inputs.
    assert set(report["calibration"]) == {"tiny-llama.0", "tiny-llama.1"}
    assert all(sum(q) == pytest.approx(1.0) for q in report["calibration"].values())
    assert scorers["length"]["all"] | {"low": None, "high": None} == {
        "agreement": 0.5,
        "low": None,
        "high": None,
        "n": 4,
        "wins": 2,
        "losses": 2,
        "ties": 0,
        "tie_share": 0.0,
    }
    assert all(s["all"]["wins"] + s["all"]["losses"] + s["all"]["ties"] == 4 for s in report["scorers"])
    assert [(v["rater"], v["prompt"], v["texts"]) for v in report["validity"]] == [
        ("tiny-llama", 0, 8),
        ("tiny-llama", 1, 8),
    ]
    assert json.loads((out / "metrics.json").read_text())["model"]["agreement"] == scorers["model"]["all"]["agreement"]
    assert (
        "| **`model`: SelectIT model level, the paper's (the selection's ranking)**" in (out / "audit.md").read_text()
    )
    assert report["headline"] == "model"

    # The same responses through `selectit score`: the audit's model level is that score.
    responses = tmp_path / "responses.json"
    read = read_pairs(pairs)
    rows = [{"instruction": e.instruction, "input": e.input, "output": e.output} for e in pair_examples(read.pairs, "")]
    responses.write_text(json.dumps(rows))
    assert main(["--params", str(params), "score", str(responses), "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    scores = pq.read_table(tmp_path / "s" / "scores.parquet").to_pydict()
    by_id = dict(zip(scores["example_id"], scores["model_score"], strict=True))
    wins = sum(by_id[p.example_id(p.preferred)] > by_id[p.example_id(p.other)] for p in read.pairs)
    assert scorers["model"]["all"]["wins"] == wins

    # A second run takes every rating from the audit's shard cache and reports the same.
    assert any((out / "cache").rglob("*.parquet"))
    assert main(command) == 0
    again = json.loads((out / "audit.json").read_text())
    assert again["scorers"] == report["scorers"]

    # Under aggregate.token_score: expected the selection ranks by the expected rating: its model
    # level is the headline (audit.agreement), and IFD is combined with it.
    assert main([*command, "--token-score", "expected"]) == 0
    expected = json.loads((out / "audit.json").read_text())
    assert expected["headline"] == "expected.model"
    names = [s["name"] for s in expected["scorers"]]
    assert (
        "rank_mean.expected.model.with.ifd.tiny-llama" in names and "rank_mean.model.with.ifd.tiny-llama" not in names
    )
    assert (
        "| **`expected.model`: expected rating: model level (the selection's ranking)**"
        in (out / "audit.md").read_text()
    )


# How the IFD tests run the loss model: on the CPU, with params.yaml's token budget.
CPU = {"device": "cpu", "token_budget": 4096, "trust_remote_code": False}


def test_ifd_losses_match_one_text_at_a_time_and_are_cached(tmp_path, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selectit.core.records import Example

    examples = [
        Example(str(i), row["instruction"], row["input"], row["output"], "t", i, "alpaca", {})
        for i, row in enumerate(TINY_ROWS)
    ]
    run = ifd.response_losses(examples, str(tiny_model), tmp_path, **CPU, max_response_tokens=6, progress=False)
    assert run.computed == len(examples) and run.losses["example_id"].to_pylist() == [e.id for e in examples]

    # The same losses computed one text at a time, with no padding and every logit.
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id

    def mean_loss(context: list[int], response: list[int]) -> float:
        ids = torch.tensor([[start, *context, *response]])
        with torch.no_grad():
            log_probs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
        at = len(context)  # the position that predicts the first response token
        return float(-torch.stack([log_probs[at + j, t] for j, t in enumerate(response)]).mean())

    rows = run.losses.to_pylist()
    for example, row in zip(examples, rows, strict=True):
        response = tokenizer(example.output, add_special_tokens=False)["input_ids"]
        assert row["truncated"] == (len(response) > 6) and row["response_tokens"] == min(len(response), 6)
        response = response[:6]
        prompt = tokenizer(ifd.alpaca_prompt(example.instruction, example.input), add_special_tokens=False)
        assert row["loss_conditioned"] == pytest.approx(mean_loss(prompt["input_ids"], response), rel=1e-4)
        assert row["loss_alone"] == pytest.approx(mean_loss([], response), rel=1e-4)
    assert run.scores()["0"] == pytest.approx(rows[0]["loss_conditioned"] / rows[0]["loss_alone"])

    # A re-run computes nothing; another token limit is another cache entry.
    again = ifd.response_losses(examples, str(tiny_model), tmp_path, **CPU, max_response_tokens=6, progress=False)
    assert again.computed == 0 and again.losses.equals(run.losses)
    other = ifd.response_losses(examples[:1], str(tiny_model), tmp_path, **CPU, max_response_tokens=3, progress=False)
    assert other.computed == 1
