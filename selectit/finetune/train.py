"""One fine-tuning run: TRL's SFTTrainer on prompt/completion data, a peft LoRA
adapter by default, checkpoints for resuming, the result saved atomically."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from selectit.config import FinetuneConfig
from selectit.core.errors import ModelLoadError
from selectit.core.io import write_json
from selectit.core.records import Example
from selectit.finetune.format import prompt_and_completion

# What errors about the base model call it: its key in params.yaml and the commands' flag.
BASE_MODEL = "finetune.base_model (--base-model)"

# Beside the saved model: [{"step": ..., "loss": ...}] of every logged training loss.
LOSS_HISTORY = "loss_history.json"


@dataclass(frozen=True)
class TrainResult:
    steps: int
    first_loss: float | None  # mean training loss of the first logged step
    last_loss: float | None  # ... and of the last one
    train_loss: float | None  # mean of every step's loss, those before a resume included
    resumed_from_step: int  # 0 unless an interrupted run was resumed


def training_dtype(cfg: FinetuneConfig) -> tuple[str, torch.device]:  # noqa: F821 (torch imported lazily)
    """(bfloat16 | float32, device): bf16 where the hardware has it (`auto`), else fp32."""
    import torch

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    if cfg.dtype != "auto":
        return cfg.dtype, device
    # CPUs train bf16 through autocast slower than fp32 unless they have AMX; keep fp32 there.
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return ("bfloat16" if bf16 else "float32"), device


def checkpoint_key(cfg: FinetuneConfig, base_content_id: str, examples: Sequence[Example]) -> str:
    """What a checkpoint was made from: a checkpoint is resumed only by the same run."""
    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("variants", "device")}
    fields["base"] = base_content_id
    fields["examples"] = [e.id for e in examples]
    fields["dtype"] = training_dtype(cfg)[0]
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def mean_step_loss(logged: Sequence[tuple[int, float]]) -> float | None:
    """The mean training loss over every step of the run, from the trainer's log (one entry a
    step; a resumed run's log holds the steps before its checkpoint too). The trainer's own
    `training_loss` averages only the steps this process ran: after a resume, a different number."""
    by_step = dict(logged)  # a step logged twice (re-run after a kill) counts once
    return sum(by_step.values()) / len(by_step) if by_step else None


def last_checkpoint(folder: Path) -> Path | None:
    """The latest complete checkpoint. The trainer writes a checkpoint's files in place
    and its trainer_state.json last, so a folder without one was cut short by a kill."""
    found = sorted(
        (p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
        key=lambda p: int(p.name.rpartition("-")[2]),
    )
    return found[-1] if found else None


@contextlib.contextmanager
def mlflow_environment(tracking_uri: str | None, run_id: str | None) -> Iterator[None]:
    """Point transformers' MLflow callback at the stage's run for the length of training.

    The callback reads these variables when training starts; setting them only
    here keeps the process's global MLflow state untouched otherwise."""
    values = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_RUN_ID": run_id}
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def finetune(
    examples: Sequence[Example],
    cfg: FinetuneConfig,
    model_location: str,
    base_content_id: str,
    output: Path,
    checkpoints: Path,
    *,
    report_to_mlflow: bool = False,
    progress: bool = True,
    callbacks: Sequence = (),
) -> TrainResult:
    """Train on `examples` and save the adapter (or model) and tokenizer to `output`.

    Checkpoints go to `checkpoints/<key>` (the key covers settings, base model and
    data); a run killed mid-way resumes from its last checkpoint. `output` appears
    whole or not at all."""
    from datasets import Dataset  # datasets, trl: heavy, loaded only when training
    from trl import SFTTrainer

    run_dir = Path(checkpoints) / checkpoint_key(cfg, base_content_id, examples)
    model, tokenizer = _load_base(model_location, cfg)
    trainer = SFTTrainer(
        model=model,
        args=_training_arguments(cfg, run_dir, len(examples), report_to_mlflow, progress),
        train_dataset=Dataset.from_list([prompt_and_completion(e) for e in examples]),
        processing_class=tokenizer,
        peft_config=_lora_config(cfg),
        callbacks=list(callbacks),
    )
    resume = last_checkpoint(run_dir)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    logged = [(entry["step"], entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    losses = [loss for _, loss in logged]
    _save_atomically(trainer, tokenizer, output, logged)
    shutil.rmtree(run_dir, ignore_errors=True)  # finished: the output is the result now
    return TrainResult(
        steps=trainer.state.global_step,
        first_loss=losses[0] if losses else None,
        last_loss=losses[-1] if losses else None,
        train_loss=mean_step_loss(logged),
        resumed_from_step=int(resume.name.rpartition("-")[2]) if resume else 0,
    )


def _load_base(model_location: str, cfg: FinetuneConfig):
    """(model, tokenizer) of the base model, in fp32 (the trainer casts for bf16)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_location, trust_remote_code=cfg.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            model_location, dtype=torch.float32, trust_remote_code=cfg.trust_remote_code
        )
    except Exception as exc:
        raise ModelLoadError(f"{BASE_MODEL}: could not load {model_location}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _training_arguments(cfg: FinetuneConfig, run_dir: Path, n_examples: int, report_to_mlflow: bool, progress: bool):
    from trl import SFTConfig

    dtype, device = training_dtype(cfg)
    return SFTConfig(
        output_dir=str(run_dir),
        seed=cfg.seed,
        data_seed=cfg.seed,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float below 1 is a share of the steps
        per_device_train_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=cfg.accumulation_steps,
        max_length=cfg.max_length,
        gradient_checkpointing=cfg.gradient_checkpointing,
        bf16=dtype == "bfloat16",
        use_cpu=device.type == "cpu",
        logging_steps=1,
        save_strategy="steps",
        save_steps=_save_every(n_examples, cfg),
        save_total_limit=1,
        report_to=["mlflow"] if report_to_mlflow else [],
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        trust_remote_code=cfg.trust_remote_code,
    )


def _lora_config(cfg: FinetuneConfig):
    """The peft adapter settings; None for full fine-tuning."""
    if cfg.method != "lora":
        return None
    from peft import LoraConfig

    targets = cfg.lora_target_modules
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
        task_type="CAUSAL_LM",
    )


def _save_every(n_examples: int, cfg: FinetuneConfig) -> int:
    """About ten checkpoints a run: often enough to lose little to a crash, rarely
    enough that saving does not dominate a small run."""
    steps_per_epoch = max(1, -(-n_examples // cfg.batch_size))
    total = cfg.max_steps or max(1, int(steps_per_epoch * cfg.epochs + 0.999))
    return max(1, total // 10)


def _save_atomically(trainer, tokenizer, output: Path, losses: list[tuple[int, float]]) -> None:
    output = Path(output)
    staging = output.with_name(f".{output.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    trainer.save_model(str(staging))
    tokenizer.save_pretrained(str(staging))
    # Every logged training loss, for the run report's loss curves (the checkpoints holding
    # the trainer's state are removed once the run finishes).
    write_json(staging / LOSS_HISTORY, [{"step": step, "loss": loss} for step, loss in losses])
    shutil.rmtree(output, ignore_errors=True)
    os.replace(staging, output)
