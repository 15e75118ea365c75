"""Where a rater runs and in what precision: the CPU, one GPU, or several GPUs of one machine.

The plan needs only the rater's parameter count (read from its config on the
`meta` device, no weights loaded) and the memory of the visible GPUs, so a
scheduler can ask for the GPUs one replica needs before any worker loads it.

On CUDA, `score.dtype: auto` keeps fp32 weights with bf16 matmuls under
autocast (the most faithful fast path: Spearman 0.997 against fp32 on SmolLM2,
where pure bf16 weights gave 0.98) while that fits one GPU with room to spare,
and otherwise stores the weights in bf16, which halves their memory. A rater
whose weights do not fit one GPU is split layer by layer over as few GPUs of
the machine as hold it (transformers' `device_map` with per-GPU caps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from selectit.core.errors import ModelLoadError
from selectit.rating.dtypes import DTYPES, check_dtype, resolve_dtype
from selectit.rating.models import ModelSource, resolve
from selectit.rating.settings import RatingSettings

GB = 1e9  # sizes in messages are decimal GB, as GPU makers count them

# Share of a GPU's memory the weights may take. The rest is for the CUDA context,
# one token-budget batch's activations and the rating prompt's cached keys and
# values (about 2-3 GB for a 70B rater at token_budget 4096; a batch that still
# runs out of memory is halved and retried).
WEIGHTS_SHARE = 0.9

# fp32 weights under bf16 autocast: autocast keeps a bf16 copy of every weight it
# casts until the forward pass ends, so the weights take 1.5 times their fp32 size.
AUTOCAST_COPIES = 1.5


@dataclass(frozen=True)
class Placement:
    dtype: str  # a name of dtypes.DTYPES
    device: str  # "cpu", "cuda:N": where the inputs go (the first GPU when split)
    device_map: str | None  # None: the whole model on `device`; "auto": split over the GPUs of max_memory
    max_memory: dict[int, int] | None  # GPU index -> bytes of weights it may hold (only when split)
    n_gpus: int  # GPUs one replica of this rater needs (0 on the CPU)
    reason: str  # one line for the log: what was chosen and why


def _weights(n_params: int, dtype: str) -> tuple[float, float, str]:
    """Bytes the stored weights take in this DTYPES entry, the factor by which they grow
    while the model runs (autocast's copies), and what they are, in words."""
    weights_dtype, compute_dtype = DTYPES[dtype]
    stored = n_params * torch.finfo(weights_dtype).bits / 8
    if compute_dtype is not None:
        return stored, AUTOCAST_COPIES, "fp32 weights with autocast's copies"
    return stored, 1.0, "bf16 weights" if weights_dtype == torch.bfloat16 else "fp32 weights"


def _gpu_index(device_setting: str, n_visible: int, name: str) -> int | None:
    """The GPU that `cuda:N` names (None for `cuda` and `auto`: any of them)."""
    if ":" not in device_setting:
        return None
    index = int(device_setting.split(":", 1)[1])
    if not 0 <= index < n_visible:
        raise ModelLoadError(f"rater {name!r}: score.device is {device_setting} but {n_visible} GPU(s) are visible")
    return index


def plan_placement(
    n_params: int,
    dtype_setting: str,
    device_setting: str,
    gpu_memory: list[int],
    *,
    name: str = "rater",
    gpu_bf16: bool = True,
) -> Placement:
    """Choose dtype and device(s) for a rater of `n_params` parameters.

    `gpu_memory` holds each visible GPU's memory in bytes ([] without GPUs);
    `gpu_bf16` says whether the GPUs have native bf16 (else autocast runs in fp16).
    Explicit dtype names are kept; only `auto` is chosen here."""
    check_dtype(dtype_setting)
    if device_setting == "cpu" or (device_setting == "auto" and not gpu_memory):
        dtype = resolve_dtype(dtype_setting, torch.device("cpu"))
        how = "as set" if dtype_setting != "auto" else "auto's choice on this CPU"
        return Placement(dtype, "cpu", None, None, 0, f"CPU, {dtype} ({how})")
    if not device_setting.startswith("cuda") and device_setting != "auto":
        # Other accelerators (mps, xpu) run as before: one device, the CPU's dtype rule.
        dtype = resolve_dtype(dtype_setting, torch.device(device_setting))
        return Placement(dtype, device_setting, None, None, 0, f"{device_setting}, {dtype}")
    if not gpu_memory:
        raise ModelLoadError(f"rater {name!r}: score.device is {device_setting} but no CUDA GPU is visible")

    pinned = _gpu_index(device_setting, len(gpu_memory), name)
    first = 0 if pinned is None else pinned
    dtype, why = _gpu_dtype(n_params, dtype_setting, gpu_memory[first], gpu_bf16)
    stored, growth, what = _weights(n_params, dtype)
    need = stored * growth
    if need <= gpu_memory[first] * WEIGHTS_SHARE:
        return Placement(dtype, f"cuda:{first}", None, None, 1, f"{why}; {need / GB:.1f} GB of {what} on cuda:{first}")
    size = f"rater {name!r} ({n_params / 1e9:.1f}B parameters) needs {need / GB:.1f} GB for its {what}"
    if pinned is not None:
        raise ModelLoadError(
            f"{size}, more than {WEIGHTS_SHARE:.0%} of the {gpu_memory[first] / GB:.1f} GB of {device_setting}; "
            "set score.device: cuda to split it over several GPUs"
        )
    return _split(dtype, why, stored, growth, what, gpu_memory, size)


def _gpu_dtype(n_params: int, dtype_setting: str, memory: int, gpu_bf16: bool) -> tuple[str, str]:
    """The dtype on a GPU of `memory` bytes, and why: `auto` keeps fp32 weights under autocast
    while they fit with room to spare, else stores them in bf16."""
    if dtype_setting != "auto":
        return dtype_setting, f"{dtype_setting} as set"
    gpu = f"the {memory / GB:.1f} GB GPU"
    mixed = "bfloat16" if gpu_bf16 else "float16"
    stored, growth, _ = _weights(n_params, mixed)
    if stored * growth <= memory * WEIGHTS_SHARE:
        return mixed, f"fp32 weights, {'bf16' if gpu_bf16 else 'fp16'} matmuls: they fit {gpu} with room to spare"
    why = (
        f"bf16 weights: fp32 would take {stored / GB:.1f} GB "
        f"({stored * growth / GB:.1f} GB with autocast's copies) of {gpu}"
    )
    if not gpu_bf16:
        why += " (which has no native bf16, so it runs slowly)"
    return "bfloat16-weights", why


def _split(
    dtype: str, why: str, stored: float, growth: float, what: str, gpu_memory: list[int], size: str
) -> Placement:
    """Split the weights over the fewest GPUs, in index order, whose shares hold them."""
    # Caps on the stored weights each GPU takes; autocast's copies grow them while running.
    max_memory: dict[int, int] = {}
    for index, memory in enumerate(gpu_memory):
        max_memory[index] = int(memory * WEIGHTS_SHARE / growth)
        if sum(max_memory.values()) >= stored:
            break
    else:
        raise ModelLoadError(
            f"{size} (plus {1 - WEIGHTS_SHARE:.0%} of each GPU for activations), more than the "
            f"{sum(gpu_memory) / GB:.1f} GB of all {len(gpu_memory)} visible GPU(s); "
            "use a machine with more GPU memory or a smaller rater"
        )
    n_gpus = len(max_memory)
    caps = ", ".join(f"{cap / GB:.1f}" for cap in max_memory.values())
    reason = (
        f"{why}; {stored / GB:.1f} GB of {what.split(' with ')[0]} split over {n_gpus} of {len(gpu_memory)} GPUs "
        f"(at most {caps} GB each)"
    )
    return Placement(dtype, "cuda:0", "auto", max_memory, n_gpus, reason)


def visible_gpu_memory() -> list[int]:
    """Total memory of each visible CUDA GPU, in bytes ([] without CUDA).

    Total rather than free memory: the plan, and so the dtype the ratings are
    made in, is then the same every time on the same hardware."""
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())]


def count_parameters(config) -> int:
    """Parameters of the causal LM a transformers config describes, without allocating its weights."""
    from transformers import AutoModelForCausalLM  # transformers: loaded only when a GPU plan needs a size

    with torch.device("meta"):  # shapes only: a 70B model builds in a fraction of a second
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())  # tied weights are counted once


def source_parameters(source, trust_remote_code: bool = False) -> int:
    """Parameter count of a resolved rater (a ModelSource), from its config.json alone."""
    from transformers import AutoConfig  # transformers: loaded only when a GPU plan needs a size

    try:
        config = AutoConfig.from_pretrained(source.location, trust_remote_code=trust_remote_code)
        return count_parameters(config)
    except Exception as exc:
        raise ModelLoadError(
            f"could not read the config of rater {source.name!r} from {source.location}: {exc}"
        ) from exc


def plan_for_source(
    source: ModelSource, dtype: str, device: str, trust_remote_code: bool = False, gpu_memory: list[int] | None = None
) -> Placement:
    """The placement of a resolved rater on this machine (or on GPUs of `gpu_memory` bytes)."""
    gpus = visible_gpu_memory() if gpu_memory is None else gpu_memory
    # The size matters only for GPUs; the CPU plan does not read the config.
    n_params = source_parameters(source, trust_remote_code) if gpus and device != "cpu" else 0
    gpu_bf16 = torch.cuda.is_bf16_supported() if torch.cuda.is_available() else True
    return plan_placement(n_params, dtype, device, gpus, name=source.name, gpu_bf16=gpu_bf16)


def gpus_per_replica(
    spec_or_source: str | ModelSource, settings: RatingSettings, gpu_memory: list[int] | None = None
) -> int:
    """GPUs one replica of this rater needs under these settings, from its config alone.

    0 when settings.device is cpu or no GPU is visible. `gpu_memory` plans for other
    GPUs than this machine's (say, a cluster's workers): each GPU's bytes."""
    gpus = visible_gpu_memory() if gpu_memory is None else gpu_memory
    if settings.device == "cpu" or not gpus:
        return 0
    source = spec_or_source
    if not isinstance(source, ModelSource):
        source = resolve(spec_or_source, settings.trust_remote_code)
    return plan_for_source(source, settings.dtype, settings.device, settings.trust_remote_code, gpus).n_gpus
