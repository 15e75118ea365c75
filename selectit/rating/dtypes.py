"""Precision names and what they mean on a device: below both the engine and the placement planner."""

from __future__ import annotations

from pathlib import Path

import torch

# name -> (dtype the weights are stored in, dtype matmuls run in under autocast or None)
DTYPES = {
    "float32": (torch.float32, None),
    "bfloat16": (torch.float32, torch.bfloat16),
    "float16": (torch.float32, torch.float16),
    # Half the memory, for large raters on a GPU; less faithful than "bfloat16".
    # What `auto` picks on CUDA when fp32 weights would crowd the GPU (placement.py).
    "bfloat16-weights": (torch.bfloat16, None),
}


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX, where bf16 matmuls beat fp32 (Linux flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_dtype(dtype: str) -> None:
    if dtype != "auto" and dtype not in DTYPES:
        raise ValueError(f"dtype must be auto or one of {sorted(DTYPES)}, got {dtype!r}")


def resolve_dtype(dtype: str, device: torch.device) -> str:
    """The dtype name `auto` stands for on this device; other names pass through.

    On CUDA this is the choice for a rater whose fp32 weights fit one GPU with
    room to spare; placement.plan_placement stores larger raters' weights in bf16."""
    check_dtype(dtype)
    if dtype != "auto":
        return dtype
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if cpu_has_native_bf16() else "float32"
