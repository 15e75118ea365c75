"""Fine-tuning on a tiny random Llama: that training lowers the loss, that a saved adapter
reloads to the same outputs, that an interrupted run resumes, and the held-out loss by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import TESTS

from selectit.core.records import Example


def _settings(**changes):
    import yaml
    from helpers import ROOT

    from selectit.config import FinetuneConfig

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())["finetune"]
    raw.update(
        {
            "max_steps": 6,
            "batch_size": 4,
            "micro_batch_size": 2,
            "max_length": 64,
            "learning_rate": 5e-3,
            "lora_r": 4,
            "lora_alpha": 8,
            "lora_dropout": 0.0,
            "warmup_ratio": 0.0,
            "lr_scheduler": "constant",
            "device": "cpu",
            "dtype": "float32",
            **changes,
        }
    )
    return FinetuneConfig(**raw)


TRAIN = [Example(f"t{i}", "Repeat the word.", "", "banana banana banana.", "s", i, "alpaca", {}) for i in range(4)]


def test_training_lowers_the_loss_and_the_adapter_reloads_to_the_same_outputs(tiny_model, tmp_path):
    import torch

    from selectit.finetune.models import load_variant
    from selectit.finetune.train import finetune

    result = finetune(TRAIN, _settings(), str(tiny_model), "tiny", tmp_path / "out", tmp_path / "ckpt", progress=False)
    assert result.steps == 6 and result.last_loss < result.first_loss
    assert (tmp_path / "out" / "adapter_config.json").is_file()
    assert not any((tmp_path / "ckpt").iterdir())  # checkpoints go once the run is done

    tuned, tokenizer = load_variant(tmp_path / "out", str(tiny_model), torch.device("cpu"))
    again, _ = load_variant(tmp_path / "out", str(tiny_model), torch.device("cpu"))
    base, _ = load_variant(None, str(tiny_model), torch.device("cpu"))
    batch = tokenizer(["Repeat the word. banana"], return_tensors="pt")
    with torch.inference_mode():
        logits = [m(**batch).logits for m in (tuned, again, base)]
    assert torch.equal(logits[0], logits[1])
    assert not torch.allclose(logits[0], logits[2])


# Trains in a child process that stops at step 2 (checkpoint-2 is on disk by then:
# 4 steps, one checkpoint a step) and waits there to be killed.
_KILLED_TRAINING = """
import sys, time
sys.path[:0] = {paths!r}
from transformers import TrainerCallback
from test_finetune import TRAIN, _settings
from selectit.finetune.train import finetune

class WaitToBeKilled(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 2:
            print("at step 2", flush=True)
            time.sleep(600)

finetune(TRAIN, _settings(max_steps=4), {model!r}, "tiny", {out!r}, {ckpt!r}, progress=False,
         callbacks=[WaitToBeKilled()])
"""


def test_training_killed_with_sigkill_resumes_from_its_last_complete_checkpoint(tiny_model, tmp_path):
    import signal
    import subprocess
    import sys

    from selectit.finetune.train import finetune

    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    paths = [str(Path(__file__).parent), str(TESTS)]  # this module, and the helpers it imports
    script = _KILLED_TRAINING.format(paths=paths, model=str(tiny_model), out=str(out), ckpt=str(ckpt))
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        lines = []
        for line in child.stdout:
            lines.append(line)
            if line.startswith("at step 2"):
                break
        assert lines and lines[-1].startswith("at step 2"), "".join(lines)[-3000:]
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert not out.exists()  # nothing that looks finished
    (run_dir,) = ckpt.iterdir()
    # A kill while the trainer wrote checkpoint-3 leaves it without its trainer_state.json.
    (run_dir / "checkpoint-3").mkdir()
    (run_dir / "checkpoint-3" / "adapter_model.safetensors").write_bytes(b"cut short")

    result = finetune(TRAIN, _settings(max_steps=4), str(tiny_model), "tiny", out, ckpt, progress=False)
    assert result.resumed_from_step == 2 and result.steps == 4
    assert (out / "adapter_config.json").is_file()
    # The reported loss covers all four steps, the two before the resume included (issue 25).
    steps = json.loads((out / "loss_history.json").read_text())
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    assert result.train_loss == pytest.approx(sum(s["loss"] for s in steps) / 4)


def test_heldout_loss_matches_a_hand_computation(tiny_model):
    import torch

    from selectit.evaluation.heldout import heldout_nll
    from selectit.finetune.format import alpaca_prompt
    from selectit.finetune.models import load_variant

    model, tokenizer = load_variant(None, str(tiny_model), torch.device("cpu"))
    examples = [TRAIN[0], Example("t9", "Add.", "2 and 3", "5", "s", 9, "alpaca", {})]
    ids, scores = heldout_nll(model, tokenizer, examples, batch_size=2, max_length=1024, progress=False)
    assert ids == ["t0", "t9"]
    for example, score in zip(examples, scores, strict=True):
        prompt = tokenizer(alpaca_prompt(example.instruction, example.input))["input_ids"]
        response = tokenizer(example.output, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        tokens = torch.tensor([prompt + response])
        with torch.inference_mode():
            logits = model(tokens).logits[0].float()
        total = 0.0
        for position in range(len(prompt), len(prompt) + len(response)):
            total -= torch.log_softmax(logits[position - 1], -1)[tokens[0, position]].item()
        assert score == pytest.approx(total / len(response), rel=1e-4)
        assert math.isfinite(score)


def test_cli_finetune_evaluate_compare(tiny_model, tmp_path, tiny_alpaca):
    import json

    from helpers import write_params

    from selectit.cli import main

    params = write_params(tmp_path / "params.yaml", str(tiny_alpaca), [str(tiny_model)])
    common = ["--params", str(params)]
    assert (
        main(
            [
                *common,
                "finetune",
                str(tiny_alpaca),
                "--out",
                str(tmp_path / "tuned"),
                "--max-steps",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (tmp_path / "tuned" / "model" / "adapter_config.json").is_file()
    tuned = json.loads((tmp_path / "tuned" / "summary.json").read_text())  # the finetune stage's summary
    assert tuned["variant"] == "tuned" and tuned["examples"] == 6 and tuned["steps"] == 2
    # As in the stage, the same settings and data again re-use the result instead of training anew.
    again = [*common, "finetune", str(tiny_alpaca), "--out", str(tmp_path / "tuned"), "--max-steps", "2"]
    assert main(again) == 0
    assert json.loads((tmp_path / "tuned" / "summary.json").read_text()) == tuned
    for name, model in (("tuned", str(tmp_path / "tuned")), ("base", "base")):
        assert (
            main(
                [
                    *common,
                    "evaluate",
                    "--model",
                    model,
                    "--heldout",
                    str(tiny_alpaca),
                    "--out",
                    str(tmp_path / f"eval-{name}"),
                    "--no-progress",
                ]
            )
            == 0
        )
    assert (
        main(
            [
                *common,
                "compare",
                f"tuned={tmp_path / 'eval-tuned'}",
                f"base={tmp_path / 'eval-base'}",
                "--reference",
                "base",
                "--out",
                str(tmp_path / "cmp"),
            ]
        )
        == 0
    )
    evaluated = json.loads((tmp_path / "eval-tuned" / "summary.json").read_text())  # the evaluate stage's summary
    assert evaluated["finetune_run_key"] == tuned["run_key"]
    comparison = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert json.loads((tmp_path / "cmp" / "metrics.json").read_text())  # the compare stage's DVC metrics
    cell = comparison["variants"]["tuned"]["heldout_nll"]
    assert cell["n"] == 6 and cell["vs_reference"]["verdict"] in ("better", "worse", "no clear difference")
    assert "held-out NLL" in (tmp_path / "cmp" / "comparison.md").read_text()
    # Preference accuracy on the two judged pairs of the test params; the base model ties on each.
    preference = comparison["variants"]["base"]["preference_accuracy"]
    assert preference["n"] == 2 and preference["mean"] == 0.5
    assert comparison["variants"]["tuned"]["preference_accuracy"]["n"] == 2
    assert len((tmp_path / "eval-tuned" / "preference_pairs.txt").read_text().split()) == 2
