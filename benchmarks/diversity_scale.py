"""Cost of diversity-aware selection as rows grow: time and peak memory of the repr filter,
k-center, semantic duplicates and the coverage numbers (diversity.json) at several sizes.

Each (size, method) runs in its own child process, so each peak is its own. The child reads
the embeddings as the select stage does: from an embeddings file (written once per size by
this script), into the ranked row file the walks read a block at a time (selection/rows.py).
The embeddings are synthetic but shaped like real ones (unit rows of `--dim`, 576 as
SmolLM2's hidden size): rows drawn around 2,000 topic directions (cosine about 0.6 to
their topic), and every tenth row a paraphrase of an earlier row (cosine 0.85 to 1), so
the filters have work to do. The ranking is the row order. Reported per run:
- seconds: the call alone (reading the file and imports excluded);
- read seconds: the embeddings file into the ranked row file (`ranked_vectors`);
- peak RSS: the child's peak resident set, VmHWM (imports, the ranking's ids, reading the file and the call);
- working peak: the most memory the call itself held at once (tracemalloc, which numpy
  reports its arrays to; from a second, untimed run).

    python benchmarks/diversity_scale.py --sizes 5000 20000 51941 --repeat 3 --out diversity_scale.json

The goals (benchmarks/scale.py): time grows linearly (the largest size costs at most
1.2 x its share of rows of the smallest size's time) and the largest size's peak memory
is at most 1.2 x the smallest's.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

# Imported before anything is timed: the imports are not the methods' cost.
from selectit.core.embeddings import write_embeddings
from selectit.selection.coverage import ExampleFacts, describe_selections
from selectit.selection.diversity import k_center, repr_filter
from selectit.selection.rows import RankedRows, ranked_vectors
from selectit.selection.semantic_duplicates import semantic_duplicate_rows
from selectit.selection.top import n_to_keep

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("repr-filter", "k-center", "semantic-duplicates", "coverage")
GOAL = 1.2


def synthetic_embeddings(n: int, dim: int, seed: int = 0, topics: int = 2000, block: int = 8192) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rows = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(n, start + block)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32) / np.sqrt(dim, dtype=np.float32)
        part = centres[rng.integers(0, topics, stop - start)] * 0.75 + noise
        rows[start:stop] = part / np.linalg.norm(part, axis=1, keepdims=True)  # by block: no N x dim temporary
    for i in range(n // 10, n, 10):  # paraphrases of earlier rows
        source = rows[rng.integers(0, i)]
        noise = rng.standard_normal(dim, dtype=np.float32)
        noise -= (noise @ source) * source
        cosine = rng.uniform(0.85, 1.0)
        rows[i] = cosine * source + np.sqrt(1 - cosine**2) * noise / np.linalg.norm(noise)
    return rows


def example_ids(n: int) -> list[str]:
    return [f"e{i}" for i in range(n)]


def run_one(method: str, vectors: RankedRows, ratio: float, max_similarity: float) -> dict:
    budget = n_to_keep(len(vectors), ratio)
    if method == "repr-filter":
        return {"kept": len(repr_filter(vectors, budget, max_similarity))}
    if method == "k-center":
        return {"kept": len(k_center(vectors, budget))}
    if method == "semantic-duplicates":
        return {"duplicates": len(semantic_duplicate_rows(vectors, 0.95))}
    ids = [str(i) for i in range(len(vectors))]
    facts = dict.fromkeys(ids, ExampleFacts("write", 10))
    described = describe_selections(
        ids, vectors, facts, {"top": ids[:budget]}, clusters=50, coverage_sample=5000, seed=0
    )
    return {"coverage": described["selections"]["top"]["coverage"]}


def peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM). Not `ru_maxrss`: on Linux that carries the
    parent's resident set at the fork over the exec, and the parent holds the synthetic pools."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (this benchmark reads Linux's)")


def child(args) -> None:
    if args.method == "coverage":  # sklearn's import is part of the cost, not of the input
        import sklearn.cluster  # noqa: F401
    ids = example_ids(args.size)
    start = time.perf_counter()
    vectors = ranked_vectors(args.embeddings, ids, centre=False)
    read_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = run_one(args.method, vectors, args.ratio, args.max_similarity)
    seconds = time.perf_counter() - start
    # The working memory from a second, traced run: tracing slows every allocation, so the
    # timed run above is not traced.
    tracemalloc.start()
    run_one(args.method, vectors, args.ratio, args.max_similarity)
    _, working = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_rss = peak_rss_kib() / 1024
    print(
        json.dumps(
            {
                "size": args.size,
                "method": args.method,
                "seconds": round(seconds, 3),
                "read_seconds": round(read_seconds, 3),
                "peak_rss_mb": round(peak_rss, 1),
                "working_peak_mb": round(working / 2**20, 1),
                "matrix_mb": round(args.size * args.dim * 4 / 2**20, 1),  # float32, were it held
                **result,
            }
        )
    )


def measure(args, files: dict[int, Path]) -> list[dict]:
    """Each method at each size in --repeat child processes; the fastest run of each."""
    rows = []
    for method in args.methods:
        for size in args.sizes:
            command = [sys.executable, __file__, "--child", "--size", str(size), "--method", method]
            command += ["--dim", str(args.dim), "--ratio", str(args.ratio), "--embeddings", str(files[size])]
            command += ["--max-similarity", str(args.max_similarity)]
            # The fastest of --repeat runs: on a shared machine the others measure the neighbours.
            runs = [
                json.loads(
                    subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout.splitlines()[
                        -1
                    ]
                )
                for _ in range(args.repeat)
            ]
            rows.append({**min(runs, key=lambda r: r["seconds"]), "seconds_all": [r["seconds"] for r in runs]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 51941])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--dim", type=int, default=576)
    parser.add_argument("--ratio", type=float, default=0.2)
    parser.add_argument("--max-similarity", type=float, default=0.9)
    parser.add_argument("--repeat", type=int, default=3, help="runs per size and method; the fastest is kept")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--embeddings", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="diversity-scale-") as folder:
        files = {}
        for size in args.sizes:
            files[size] = Path(folder) / f"embeddings-{size}.parquet"
            write_embeddings(files[size], example_ids(size), synthetic_embeddings(size, args.dim))
        rows = measure(args, files)
    goals = {}
    for method in args.methods:
        mine = [r for r in rows if r["method"] == method]
        small, large = mine[0], mine[-1]
        share = large["size"] / small["size"]
        goals[method] = {
            "time_ratio_to_linear": round(large["seconds"] / (small["seconds"] * share), 2),
            "peak_rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 2),
            "working_peak_ratio_per_row": round(
                large["working_peak_mb"] / max(small["working_peak_mb"], 0.1) / share, 2
            ),
        }
    report = {"machine": platform.platform(), "cpus": len(__import__("os").sched_getaffinity(0)), "runs": rows}
    report["goals"] = goals
    print(json.dumps(goals, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
