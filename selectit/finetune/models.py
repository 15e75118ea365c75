"""Loading a fine-tuned variant for evaluation: the base model, with the variant's
LoRA adapter on top, or the variant's own weights after full fine-tuning."""

from __future__ import annotations

from pathlib import Path

from selectit.core.errors import InputError, ModelLoadError


def load_variant(model_folder: Path | None, base_location: str, device, trust_remote_code: bool = False):
    """(model, tokenizer) in eval mode. `model_folder` None means the base model as it is."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_folder = Path(model_folder) if model_folder is not None else None
    if model_folder is not None and not model_folder.is_dir():
        raise InputError(f"{model_folder}: no fine-tuned model here; run its finetune stage first")
    is_adapter = model_folder is not None and (model_folder / "adapter_config.json").is_file()
    weights = base_location if model_folder is None or is_adapter else str(model_folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(model_folder or base_location), trust_remote_code=trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(weights, dtype=torch.float32, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelLoadError(f"could not load the model from {weights}: {exc}") from exc
    if is_adapter:
        from peft import PeftModel

        # Merged, the adapter costs nothing at inference and lm-eval sees a plain model.
        model = PeftModel.from_pretrained(model, str(model_folder)).merge_and_unload()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer
