"""Placement of raters of the paper's size: dtype and GPUs planned from configs, no weights loaded."""

from __future__ import annotations

import types

import pytest
import torch
from transformers import LlamaConfig

from selectit.core.errors import ModelLoadError
from selectit.rating import dtypes
from selectit.rating.models import ModelSource
from selectit.rating.placement import Placement, count_parameters, gpus_per_replica, plan_placement

GB = 10**9
A100_80 = 80 * GB
RTX_24 = 24 * GB


def llama2(size: str) -> LlamaConfig:
    """LLaMA-2's shapes (the paper's raters are LLaMA-2 7B, 13B and 70B)."""
    hidden, layers, intermediate, kv_heads = {
        "7b": (4096, 32, 11008, 32),
        "13b": (5120, 40, 13824, 40),
        "70b": (8192, 80, 28672, 8),
    }[size]
    return LlamaConfig(
        vocab_size=32000,
        hidden_size=hidden,
        num_hidden_layers=layers,
        intermediate_size=intermediate,
        num_attention_heads=hidden // 128,
        num_key_value_heads=kv_heads,
    )


def smollm2_135m() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        num_hidden_layers=30,
        intermediate_size=1536,
        num_attention_heads=9,
        num_key_value_heads=3,
        tie_word_embeddings=True,
    )


@pytest.fixture(scope="module")
def sizes() -> dict[str, int]:
    return {name: count_parameters(llama2(name)) for name in ("7b", "13b", "70b")}


def test_parameters_are_counted_from_the_config_alone(sizes):
    assert sizes["7b"] == pytest.approx(6.74e9, rel=0.01)
    assert sizes["13b"] == pytest.approx(13.02e9, rel=0.01)
    assert sizes["70b"] == pytest.approx(68.98e9, rel=0.01)
    # Tied embeddings count once.
    assert count_parameters(smollm2_135m()) == pytest.approx(134.5e6, rel=0.01)


# The table of docs/getting-started/gpus.md: (rater, GPUs) -> (dtype, n_gpus, split)
TABLE = [
    ("7b", [A100_80], "bfloat16", 1, False),  # fp32 weights + bf16 matmuls: 40 GB with autocast's copies
    ("13b", [A100_80], "bfloat16-weights", 1, False),  # fp32 would need 78 GB with the copies
    ("70b", [A100_80] * 2, "bfloat16-weights", 2, True),
    ("70b", [A100_80] * 8, "bfloat16-weights", 2, True),  # the fewest GPUs that hold it, not all 8
    ("7b", [RTX_24], "bfloat16-weights", 1, False),
]


@pytest.mark.parametrize(("size", "gpus", "dtype", "n_gpus", "split"), TABLE)
def test_auto_on_cuda_by_rater_size(sizes, size, gpus, dtype, n_gpus, split):
    plan = plan_placement(sizes[size], "auto", "auto", gpus, name=size)
    assert (plan.dtype, plan.n_gpus, plan.device) == (dtype, n_gpus, "cuda:0")
    if split:
        assert plan.device_map == "auto"
        assert sorted(plan.max_memory) == list(range(n_gpus))
        # Each GPU keeps a tenth free for activations, and the caps hold the bf16 weights.
        assert all(cap == 0.9 * A100_80 for cap in plan.max_memory.values())
        assert sum(plan.max_memory.values()) >= 2 * sizes[size]
    else:
        assert plan.device_map is None and plan.max_memory is None
    assert "\n" not in plan.reason


def test_reason_says_why_weights_are_bf16(sizes):
    plan = plan_placement(sizes["13b"], "auto", "cuda", [A100_80])
    assert plan.reason.startswith("bf16 weights: fp32 would take 52.1 GB")
    assert "of the 80.0 GB GPU" in plan.reason


@pytest.mark.parametrize(
    ("size", "gpus", "available"),
    [("70b", [A100_80], "80.0 GB of all 1"), ("13b", [RTX_24], "24.0 GB of all 1"), ("70b", [RTX_24] * 4, "96.0 GB")],
)
def test_clear_error_when_no_gpus_hold_the_rater(sizes, size, gpus, available):
    with pytest.raises(ModelLoadError, match=f"rater '{size}' \\(.*B parameters\\) needs .* GB") as info:
        plan_placement(sizes[size], "auto", "auto", gpus, name=size)
    assert available in str(info.value)


def test_a_small_rater_keeps_fp32_weights_with_bf16_autocast():
    plan = plan_placement(count_parameters(smollm2_135m()), "auto", "auto", [A100_80])
    assert plan == Placement("bfloat16", "cuda:0", None, None, 1, plan.reason)
    assert dtypes.DTYPES[plan.dtype] == (torch.float32, torch.bfloat16)
    assert plan.reason.startswith("fp32 weights, bf16 matmuls")
    # Without native bf16 the matmuls run in fp16, as resolve_dtype has it.
    assert plan_placement(135_000_000, "auto", "auto", [A100_80], gpu_bf16=False).dtype == "float16"


def test_explicit_dtypes_pass_through_but_get_a_device_plan(sizes):
    plan = plan_placement(sizes["70b"], "float32", "cuda", [A100_80] * 8)
    assert (plan.dtype, plan.n_gpus, plan.device_map) == ("float32", 4, "auto")  # 276 GB in 72 GB shares
    plan = plan_placement(sizes["13b"], "bfloat16", "cuda", [A100_80] * 2)
    # fp32 weights with autocast's copies (78 GB) do not fit one GPU's 72 GB share; each GPU
    # then takes at most 48 GB of fp32 weights, which grow by half while the model runs.
    assert (plan.dtype, plan.n_gpus) == ("bfloat16", 2)
    assert plan.max_memory == {0: 48 * GB, 1: 48 * GB}
    assert plan_placement(sizes["7b"], "bfloat16-weights", "auto", [A100_80]).n_gpus == 1


def test_a_named_gpu_is_used_alone(sizes):
    plan = plan_placement(sizes["13b"], "auto", "cuda:1", [A100_80] * 2)
    assert (plan.device, plan.n_gpus, plan.device_map) == ("cuda:1", 1, None)
    with pytest.raises(ModelLoadError, match="set score.device: cuda to split it"):
        plan_placement(sizes["70b"], "auto", "cuda:1", [A100_80] * 2, name="70b")
    with pytest.raises(ModelLoadError, match="2 GPU"):
        plan_placement(sizes["7b"], "auto", "cuda:2", [A100_80] * 2)


@pytest.mark.parametrize("native_bf16", [True, False])
def test_cpu_follows_resolve_dtype(monkeypatch, sizes, native_bf16):
    monkeypatch.setattr(dtypes, "cpu_has_native_bf16", lambda: native_bf16)
    expected = dtypes.resolve_dtype("auto", torch.device("cpu"))
    assert expected == ("bfloat16" if native_bf16 else "float32")
    for gpus, device in (([], "auto"), ([A100_80], "cpu")):
        plan = plan_placement(sizes["70b"], "auto", device, gpus)
        assert plan == Placement(expected, "cpu", None, None, 0, plan.reason)
    assert plan_placement(sizes["7b"], "float16", "cpu", []).dtype == "float16"


def test_cuda_without_gpus_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="score.device is cuda but no CUDA GPU is visible"):
        plan_placement(10**9, "auto", "cuda", [])


def test_gpus_per_replica_reads_only_the_config(tmp_path):
    folder = tmp_path / "llama-2-70b"
    llama2("70b").save_pretrained(folder)  # config.json only: no weights to load
    source = ModelSource("llama-2-70b", str(folder))
    cfg = types.SimpleNamespace(dtype="auto", device="auto", trust_remote_code=False)
    assert gpus_per_replica(source, cfg, gpu_memory=[A100_80] * 8) == 2
    assert gpus_per_replica(str(folder), cfg, gpu_memory=[A100_80] * 8) == 2  # a spec is resolved first
    assert gpus_per_replica(source, cfg, gpu_memory=[]) == 0  # a CPU-only machine
    cpu = types.SimpleNamespace(dtype="auto", device="cpu", trust_remote_code=False)
    assert gpus_per_replica(source, cpu, gpu_memory=[A100_80] * 8) == 0
