"""Compare two data folders file by file: did a change of code keep every output the same?

    python benchmarks/compare_outputs.py BEFORE/data AFTER/data [--checkouts BEFORE AFTER]

Files are compared byte for byte; with --checkouts, the after checkout's path in a
file stands for the before one's (records name their source file by its path). JSON files that differ are compared again
without the fields that differ between any two runs (wall-clock times, speeds,
temporary paths, MLflow run ids, code versions), and Parquet tables by content;
every remaining difference is listed. Exit status 1 when something differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

# Fields that record when or how fast a run went, or which process or checkout made it.
VOLATILE = {
    "seconds",
    "texts_per_second",
    "run_id",
    "code_version",
    "git_commit",
    "data_docs",
    "run_time",
    "validation_time",
    "timestamp",
    "started",
    "finished",
}
# Written by tools with a timestamp or a random name inside (Data Docs, MLflow, logs).
SKIPPED_SUFFIXES = (".html", ".log", ".lock")
SKIPPED_PARTS = {"mlruns"}


def without_volatile(value):
    if isinstance(value, dict):
        return {k: without_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    return value


def json_differences(a, b, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                found.append(f"{where}.{key}: only in {'after' if key in b else 'before'}")
            else:
                found += json_differences(a[key], b[key], f"{where}.{key}")
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in json_differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {str(a)[:80]!r} -> {str(b)[:80]!r}"]


def compare(before: Path, after: Path, checkouts: tuple[str, str] | None = None) -> tuple[int, list[str]]:
    """(files the same, the differences); `checkouts` = (before's path, after's path)."""

    def files(root: Path) -> set[Path]:
        return {
            p.relative_to(root)
            for p in root.rglob("*")
            if p.is_file() and not p.name.endswith(SKIPPED_SUFFIXES) and not SKIPPED_PARTS & set(p.parts)
        }

    def read(path: Path, side: int) -> bytes:
        data = path.read_bytes()
        return data.replace(checkouts[1].encode(), checkouts[0].encode()) if checkouts and side else data

    left, right = files(before), files(after)
    problems = [f"{p}: only before" for p in sorted(left - right)] + [f"{p}: only after" for p in sorted(right - left)]
    same = 0
    for relative in sorted(left & right):
        a, b = read(before / relative, 0), read(after / relative, 1)
        if hashlib.sha256(a).digest() == hashlib.sha256(b).digest():
            same += 1
        elif relative.suffix == ".json":
            diffs = json_differences(without_volatile(json.loads(a)), without_volatile(json.loads(b)))
            problems += [f"{relative}{d}" for d in diffs]
            same += not diffs
        elif relative.suffix == ".parquet" and pq.read_table(before / relative).equals(pq.read_table(after / relative)):
            same += 1
        else:
            problems.append(f"{relative}: bytes differ")
    return same, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--checkouts", nargs=2, metavar=("BEFORE", "AFTER"), help="the two checkouts' paths")
    args = parser.parse_args()
    same, problems = compare(args.before, args.after, tuple(args.checkouts) if args.checkouts else None)
    print(f"{same} files the same (volatile fields aside)")
    for line in problems:
        print(line)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
