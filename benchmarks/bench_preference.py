"""What preference accuracy costs per variant: one pass of the evaluated model over both
responses of `evaluate.preference_pairs` judged pairs (what every tuned variant pays), with
the settings of params.yaml (base model, max_length, batch size, pairs file and seed).

A merged LoRA adapter has the base model's shape, so the base model stands in for a tuned
variant here: the time is the same. The base model's own pass is paid once per base model
and pairs (then cached) and costs the same again.

    python benchmarks/bench_preference.py                 # params.yaml's count
    python benchmarks/bench_preference.py --pairs 50 100 200
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import time
from pathlib import Path

import torch

from selectit.config import load_params
from selectit.evaluation.preference import nll_with, response_examples
from selectit.evaluation.preference_split import preference_split
from selectit.finetune.models import load_variant
from selectit.rating.models import resolve

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--pairs", type=int, nargs="*", help="pair counts to time (default: params.yaml's)")
    args = parser.parse_args()
    params = load_params(args.params)
    tuning, cfg = params.finetune, params.evaluate
    source = resolve(tuning.base_model, tuning.trust_remote_code)
    started = time.perf_counter()
    model, tokenizer = load_variant(None, source.location, torch.device("cpu"), tuning.trust_remote_code)
    threads = torch.get_num_threads()
    print(f"{tuning.base_model}: loaded in {time.perf_counter() - started:.1f} s; torch threads {threads}", flush=True)
    nll = nll_with(model, tokenizer, batch_size=cfg.batch_size, max_length=tuning.max_length, progress=False)
    for count in args.pairs or [cfg.preference_pairs]:
        split = preference_split(dataclasses.replace(cfg, preference_pairs=count))
        examples = response_examples(split.pairs)
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        nll(examples)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
        print(
            f"{count} pairs, {len(examples)} distinct responses (batch {cfg.batch_size}, max_length "
            f"{tuning.max_length}): per variant {seconds:.1f} s wall, {cpu:.1f} s CPU "
            f"({cpu / len(examples) * 1000:.0f} ms CPU a response)",
            flush=True,
        )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
