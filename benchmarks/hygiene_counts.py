"""How many rows the validate stage's hygiene pass removes from a file, and how fast.

    python benchmarks/hygiene_counts.py ../shared/data/instructions/alpaca_52k_cleaned.jsonl.gz
    python benchmarks/hygiene_counts.py FILE --jaccard 0.7 0.8 0.9 --no-decontaminate

Reads the file as ingest does (exact duplicates dropped, as ingest rejects them),
then runs `selectit.hygiene.run.clean` with params.yaml's hygiene settings, once
per Jaccard threshold given. Prints the counts, the time and the peak memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import time
from pathlib import Path

from selectit.config import load_params
from selectit.hygiene.run import clean
from selectit.ingest.formats import read_examples

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--jaccard", type=float, nargs="+", help="thresholds to try (default: hygiene.jaccard)")
    parser.add_argument("--no-decontaminate", action="store_true", help="near-duplicates only")
    args = parser.parse_args()

    params = load_params(args.params)
    read = read_examples([args.source])
    print(f"{args.source.name}: {len(read.examples)} distinct examples, {len(read.rejects)} rows rejected by ingest")
    for jaccard in args.jaccard or [params.hygiene.jaccard]:
        cfg = dataclasses.replace(params.hygiene, jaccard=jaccard, decontaminate=not args.no_decontaminate)
        started = time.perf_counter()
        removed = clean(iter(read.examples), cfg, Path(params.evaluate.benchmarks_dir), progress=False)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"jaccard {jaccard}: contaminated {dict(removed.contaminated) if cfg.decontaminate else 'not checked'}, "
            f"near-duplicates {removed.near_duplicates}; {seconds:.1f} s; peak RSS so far {peak:.0f} MB"
        )


if __name__ == "__main__":
    main()
