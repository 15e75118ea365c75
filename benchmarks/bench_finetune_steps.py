"""CPU time of each optimiser step of the fine-tuning recipe in params.yaml, on the first
rows of an Alpaca-format file: what one variant's training costs per example, measured in
a few steps instead of a whole run.

CPU time, not wall time, so that a shared machine still gives a usable number; run it with
OMP_NUM_THREADS=1, where no thread waits on another, and divide by about 1.8 for the wall
time of two threads on an idle 2-core machine.

    OMP_NUM_THREADS=1 python benchmarks/bench_finetune_steps.py rows.json --steps 3
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import tempfile
from pathlib import Path

from transformers import TrainerCallback

from selectit.config import load_params
from selectit.ingest.formats import read_examples
from selectit.rating.models import resolve

ROOT = Path(__file__).resolve().parents[1]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class StepTimes(TrainerCallback):
    """Prints the process's CPU time spent in each optimiser step (forward, backward, update)."""

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = _cpu_seconds()

    def on_step_end(self, args, state, control, **kwargs):
        seconds = _cpu_seconds() - self.started
        per_example = seconds / args.per_device_train_batch_size / args.gradient_accumulation_steps
        print(f"step {state.global_step}: {seconds:.1f} s CPU, {per_example:.2f} s CPU an example", flush=True)


def main() -> None:
    from selectit.finetune.train import finetune  # trl: loaded after the arguments are read

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", help="an Alpaca-format file (JSON list or JSON lines, gzipped or not)")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    params = load_params(args.params)
    cfg = dataclasses.replace(params.finetune, max_steps=args.steps)
    examples = read_examples([args.rows]).examples[: args.steps * cfg.batch_size]
    source = resolve(cfg.base_model, cfg.trust_remote_code)
    with tempfile.TemporaryDirectory() as scratch:
        finetune(
            examples,
            cfg,
            source.location,
            source.content_id,
            Path(scratch) / "out",
            Path(scratch) / "checkpoints",
            progress=False,
            callbacks=[StepTimes()],
        )


if __name__ == "__main__":
    main()
