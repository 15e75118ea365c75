"""What keeping embeddings while rating costs: time and disk, through the score stage's own code.

For each rater, the same shard of examples is rated by a `RaterSession` without embeddings
and with them (the rater loaded once and shared; the two alternate, `--repeats` times, and
the fastest of each counts, which damps a busy machine's noise). Then the embedding-only
pass that a cache rated before embeddings were kept gets (`RaterSession.embed_shard`).
Disk: the shard's ratings file and its embeddings file, per example.

    python benchmarks/embedding_cost.py --examples 32 --repeats 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from selectit.config import load_params
from selectit.ingest.formats import read_examples
from selectit.rating.embedding import RATER_EMBEDDING
from selectit.rating.keys import rater_cache
from selectit.rating.rate import RaterSession, load_rater
from selectit.rating_params import rating_settings

ROOT = Path(__file__).resolve().parents[1]


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--models", nargs="+", help="default: the raters of params.yaml")
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    params = load_params(args.params)
    settings = rating_settings(params.score)
    examples = read_examples([params.ingest.source]).examples[: args.examples]
    print(
        f"{len(examples)} examples x {settings.num_prompts} prompts, dtype {settings.dtype}, device {settings.device}"
    )
    print(
        "| rater | rating without embeddings | with embeddings | extra time | embedding-only pass "
        "| ratings on disk per example | embeddings on disk per example |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for spec in args.models or params.score.raters:
        loaded = load_rater(spec, settings)
        with tempfile.TemporaryDirectory() as folder:
            sessions = {}
            for mode, embedding in (("without", None), ("with", RATER_EMBEDDING)):
                session = RaterSession(spec, settings, rater_cache(Path(folder) / mode, spec, settings), embedding)
                session.loaded = loaded
                sessions[mode] = session
            session = sessions["without"]
            session.rate_shard(examples[:4], progress=False)  # warm-up
            seconds = {"without": [], "with": []}
            for _ in range(args.repeats):
                for mode, session in sessions.items():
                    seconds[mode].append(timed(lambda s=session: s.rate_shard(examples, progress=False)))
            fill = RaterSession(spec, settings, sessions["without"].cache, RATER_EMBEDDING)
            fill.loaded = loaded
            embed_only = min(timed(lambda s=fill: s.embed_shard(examples, progress=False)) for _ in range(args.repeats))
            ratings_bytes = sum(p.stat().st_size for p in sessions["with"].cache.folder.glob("*.parquet"))
            embedding_bytes = sum(p.stat().st_size for p in sessions["with"].embeddings.folder.glob("*.parquet"))
        without, with_ = min(seconds["without"]), min(seconds["with"])
        print(
            f"| {loaded.rater.name} | {without:.1f} s | {with_:.1f} s | {100 * (with_ / without - 1):+.1f}% "
            f"| {embed_only:.1f} s ({100 * embed_only / without:.0f}% of rating) "
            f"| {ratings_bytes / len(examples) / 1024:.2f} KiB | {embedding_bytes / len(examples) / 1024:.2f} KiB "
            f"({loaded.rater.hidden_size} x float16) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
