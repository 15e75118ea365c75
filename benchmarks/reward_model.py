"""Measure a small reward model as a learner for the `learned` selector: TRL's RewardTrainer with a
LoRA adapter on SmolLM2 over judged pairs, scored out of fold.

The first N usable pairs are split into folds grouped by instruction (as the `learned` model's
folds); for each fold a fresh SmolLM2 with a one-output classification head and a LoRA adapter is
trained on the other folds (Bradley-Terry loss, RewardTrainer), and its scalar reward orders the
held-out pairs. Agreement on all pairs and on the pairs where the shorter response wins, with
percentile bootstrap intervals, and the wall and CPU seconds.

    python benchmarks/reward_model.py ../shared/data/judged/dev_pairs.jsonl --limit 100 --folds 5
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from datasets import Dataset
from peft import LoraConfig
from selector_learners import agreement_cells  # the script beside this one
from sklearn.model_selection import GroupKFold
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import RewardConfig, RewardTrainer

from selectit.audit.pairs import JudgedPair, read_pairs
from selectit.rating.ifd import alpaca_prompt
from selectit.rating.models import resolve


def rows(pairs: list[JudgedPair]) -> list[dict]:
    return [
        {
            "prompt": alpaca_prompt(p.instruction, p.input),
            "chosen": p.response(p.preferred),
            "rejected": p.response(p.other),
        }
        for p in pairs
    ]


def rewards(model, tokenizer, prompts: list[str], responses: list[str], max_length: int) -> np.ndarray:
    out = []
    model.eval()
    for prompt, response in zip(prompts, responses, strict=True):
        encoded = tokenizer(
            prompt + response + tokenizer.eos_token, return_tensors="pt", truncation=True, max_length=max_length
        )
        with torch.inference_mode():
            out.append(float(model(**encoded).logits[0, 0]))
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    args = parser.parse_args()

    torch.manual_seed(0)
    pairs = read_pairs(args.pairs, args.limit).pairs
    groups = [f"{p.instruction}\n{p.input}" for p in pairs]
    location = resolve(args.model).location
    tokenizer = AutoTokenizer.from_pretrained(location)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    wins = np.zeros(len(pairs), dtype=bool)
    started, cpu = time.perf_counter(), time.process_time()
    for fold, (train, test) in enumerate(GroupKFold(n_splits=args.folds).split(pairs, groups=groups)):
        model = AutoModelForSequenceClassification.from_pretrained(location, num_labels=1, dtype=torch.float32)
        model.config.pad_token_id = tokenizer.pad_token_id
        with tempfile.TemporaryDirectory() as out:
            config = RewardConfig(
                output_dir=out,
                per_device_train_batch_size=args.batch,
                num_train_epochs=args.epochs,
                learning_rate=args.learning_rate,
                max_length=args.max_length,
                logging_steps=5,
                save_strategy="no",
                report_to=[],
                seed=0,
                use_cpu=True,
                disable_tqdm=True,
            )
            lora = LoraConfig(task_type="SEQ_CLS", r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear")
            trainer = RewardTrainer(
                model=model,
                args=config,
                train_dataset=Dataset.from_list(rows([pairs[i] for i in train])),
                processing_class=tokenizer,
                peft_config=lora,
            )
            trainer.train()
            held_out = [pairs[i] for i in test]
            prompts = [alpaca_prompt(p.instruction, p.input) for p in held_out]
            chosen = rewards(
                trainer.model, tokenizer, prompts, [p.response(p.preferred) for p in held_out], args.max_length
            )
            other = rewards(trainer.model, tokenizer, prompts, [p.response(p.other) for p in held_out], args.max_length)
            wins[test] = chosen > other
        print(
            f"fold {fold}: {wins[test].mean():.1%} of {len(test)} held-out pairs, {time.perf_counter() - started:.0f} s"
        )
    shorter = np.array([len(p.response(p.preferred)) < len(p.response(p.other)) for p in pairs])
    print(
        f"\n| reward model (RewardTrainer + LoRA on {args.model}) | {agreement_cells(wins, shorter)} "
        f"| {time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU for {args.folds} folds |"
    )


if __name__ == "__main__":
    main()
