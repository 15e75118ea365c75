"""How many rows the validate stage's hygiene pass removes from a file, and how fast.

    python benchmarks/hygiene_counts.py ../shared/data/instructions/alpaca_52k_cleaned.jsonl.gz
    python benchmarks/hygiene_counts.py FILE --jaccard 0.7 0.8 0.9 --no-decontaminate
    python benchmarks/hygiene_counts.py FILE --limit 5000 --only decontaminate   # one step, one size

Reads the file as ingest does (exact duplicates dropped, as ingest rejects them),
then runs `selectit.hygiene.run.clean` with params.yaml's hygiene settings, once
per Jaccard threshold given. Prints the counts, the wall and CPU time and the peak
memory, beside the peak after reading the file (what the step adds is the difference).
Run one size and step per process for a step's own peak.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import resource
import time
from pathlib import Path

from selectit.config import load_params
from selectit.core.records import Example
from selectit.hygiene.run import clean
from selectit.ingest.formats import iter_examples

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--jaccard", type=float, nargs="+", help="thresholds to try (default: hygiene.jaccard)")
    parser.add_argument("--no-decontaminate", action="store_true", help="near-duplicates only")
    parser.add_argument("--only", choices=["decontaminate", "near-duplicates"], help="run this step alone")
    parser.add_argument("--limit", type=int, help="the first N distinct examples")
    args = parser.parse_args()

    params = load_params(args.params)
    # Streamed and cut at --limit, so the memory after reading is that of the examples kept.
    stream = (item for item in iter_examples([args.source]) if isinstance(item, Example))
    examples = list(itertools.islice(stream, args.limit))
    print(f"{args.source.name}: {len(examples)} distinct examples")
    read_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steps = {
        "decontaminate": not args.no_decontaminate and args.only in (None, "decontaminate"),
        "near_duplicates": args.only in (None, "near-duplicates"),
    }
    for jaccard in args.jaccard or [params.hygiene.jaccard]:
        cfg = dataclasses.replace(params.hygiene, jaccard=jaccard, rater_injection="off", **steps)
        started, cpu = time.perf_counter(), time.process_time()
        removed = clean(iter(examples), cfg, Path(params.evaluate.benchmarks_dir), progress=False)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"jaccard {jaccard}: contaminated {dict(removed.contaminated) if cfg.decontaminate else 'not checked'}, "
            f"near-duplicates {removed.near_duplicates if cfg.near_duplicates else 'not checked'}; "
            f"{seconds:.1f} s wall, {cpu:.1f} s CPU; peak RSS {read_peak:.0f} MB after reading, {peak:.0f} MB so far"
        )


if __name__ == "__main__":
    main()
