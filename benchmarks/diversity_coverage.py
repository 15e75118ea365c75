"""Coverage of a ranking's top R% against the repr filter, k-center and random, on real rows.

The first --rows examples of the Stanford Alpaca 52K file (or any Alpaca JSON/JSONL
file) are embedded, ranked, and selected four ways at --ratio; each selection is then
described as the select stage describes it in diversity.json (coverage of the pool,
k-means clusters touched, leading verbs, length, Jaccard overlap).

Embeddings (--embedder):
- smollm2: a plain forward pass of SmolLM2-135M-Instruct (the project's offline rater),
  the last layer's hidden states mean-pooled over the example's tokens (instruction,
  input, response; at most --max-tokens), as the score stage's producer will keep them;
- lsa: TF-IDF of the example's words reduced to --dim dimensions by truncated SVD, a
  cheap stand-in that runs in seconds on a CPU.
Either way they are written to --workdir as the embeddings file the select stage reads
(selectit/core/embeddings.py), and reused by a later run with the same settings.
- --embeddings <embeddings.parquet> takes a run's own (data/embeddings/embeddings.parquet:
  the rater's own, from its rating pass); the pool is then the rows that file holds.

Ranking (--ranking): `scores:<scores.parquet>` takes a run's SelectIT ranking; `length`
(longest response first) stands in where no run has scored these rows: the paper reports
that SelectIT's selection is longer than the pool, and with the small raters the score
follows length more than anything else (GUIDE 1b).

    python benchmarks/diversity_coverage.py --rows 5000 --embedder lsa --out coverage.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import time
from pathlib import Path

import numpy as np

from selectit.core.embeddings import centre_rows, read_embeddings, write_embeddings
from selectit.core.records import example_id
from selectit.selection.coverage import ExampleFacts, describe_selections, leading_verb
from selectit.selection.diversity import choose

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "instructions" / "alpaca_52k_cleaned.jsonl.gz"


def read_rows(path: Path, limit: int) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        if path.name.endswith((".jsonl", ".jsonl.gz")):
            rows = [json.loads(line) for _, line in zip(range(limit), handle, strict=False)]
        else:
            rows = json.load(handle)[:limit]
    return [{"instruction": r["instruction"], "input": r.get("input", ""), "output": r["output"]} for r in rows]


def text_of(row: dict) -> str:
    return "\n".join(part for part in (row["instruction"], row["input"], row["output"]) if part)


def embed_lsa(texts: list[str], dim: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2).fit_transform(texts)
    return TruncatedSVD(n_components=dim, random_state=seed).fit_transform(tfidf).astype(np.float32)


def embed_smollm2(texts: list[str], max_tokens: int, batch: int) -> np.ndarray:
    """Mean of the last layer's hidden states over each text's tokens (padding excluded)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selectit.rating.models import resolve

    source = resolve("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(source.location)
    model = AutoModelForCausalLM.from_pretrained(source.location, dtype=torch.float32).eval()
    out = []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            chunk = [texts[i] for i in order[start : start + batch]]
            encoded = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=max_tokens)
            hidden = model.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
            print(f"embedded {min(start + batch, len(order))} of {len(order)}", flush=True)
    matrix = np.concatenate(out)
    result = np.empty_like(matrix)
    result[order] = matrix
    return result


def embeddings(args, ids: list[str], texts: list[str]) -> tuple[np.ndarray, float]:
    if args.embeddings:
        stored_ids, matrix = read_embeddings(args.embeddings)
        row_of = {i: n for n, i in enumerate(stored_ids)}
        return matrix[[row_of[i] for i in ids]], 0.0
    cache = args.workdir / f"embeddings-{args.embedder}-{args.rows}-{args.dim}-{args.max_tokens}.parquet"
    if cache.is_file():
        cached_ids, matrix = read_embeddings(cache)
        if cached_ids == ids:
            return matrix, 0.0
    start = time.perf_counter()
    if args.embedder == "lsa":
        raw = embed_lsa(texts, args.dim, args.seed)
    else:
        raw = embed_smollm2(texts, args.max_tokens, args.batch)
    seconds = time.perf_counter() - start
    write_embeddings(cache, ids, raw)
    return read_embeddings(cache)[1], seconds


def ranking(args, ids: list[str], rows: list[dict]) -> list[str]:
    if args.ranking == "length":
        words = {i: len(r["output"].split()) for i, r in zip(ids, rows, strict=True)}
        return sorted(ids, key=lambda i: (-words[i], i))
    import pyarrow.parquet as pq

    table = pq.read_table(args.ranking.removeprefix("scores:")).sort_by("rank")
    present = set(ids)
    return [i for i in table["example_id"].to_pylist() if i in present]


def cosine_profile(vectors: np.ndarray, seed: int, sample: int = 2000) -> dict:
    """The mean and quantiles (5/50/95%) of the pairwise cosines, and the quantiles of each
    row's nearest neighbour's, over a seeded sample: spread, or crowded in one direction?"""
    rows = vectors[np.random.default_rng(seed).choice(len(vectors), min(sample, len(vectors)), replace=False)]
    products = rows @ rows.T
    np.fill_diagonal(products, -np.inf)
    nearest = products.max(axis=1)
    pairs = products[np.triu_indices(len(rows), k=1)]
    return {
        "mean": float(pairs.mean()),
        "pairwise": [round(float(q), 3) for q in np.percentile(pairs, [5, 50, 95])],
        "nearest_neighbour": [round(float(q), 3) for q in np.percentile(nearest, [5, 50, 95])],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--embedder", choices=["lsa", "smollm2"], default="lsa")
    parser.add_argument("--dim", type=int, default=256, help="lsa: dimensions kept")
    parser.add_argument("--max-tokens", type=int, default=256, help="smollm2: tokens read per example")
    parser.add_argument("--batch", type=int, default=16, help="smollm2: texts per forward pass")
    parser.add_argument("--embeddings", type=Path, help="a run's embeddings.parquet (its pool, its rater)")
    parser.add_argument("--ranking", default="length", help="length, or scores:<path to scores.parquet>")
    parser.add_argument("--centre", action="store_true", help="less the pool's mean (select.centre_embeddings)")
    parser.add_argument("--ratio", type=float, default=0.2)
    parser.add_argument("--max-similarity", type=float, nargs="+", default=[0.9])
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/diversity_coverage"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    rows = read_rows(args.source, args.rows)
    ids = [example_id(r["instruction"], r["input"], r["output"]) for r in rows]
    first = {i: n for n, i in reversed(list(enumerate(ids)))}  # exact duplicates: the first stays
    keep = sorted(first.values())
    if args.embeddings:  # the run's pool: what its score stage embedded (held-out rows are not)
        embedded = set(read_embeddings(args.embeddings)[0])
        keep = [n for n in keep if ids[n] in embedded]
    rows, ids = [rows[n] for n in keep], [ids[n] for n in keep]
    vectors, embed_seconds = embeddings(args, ids, [text_of(r) for r in rows])
    ranked = ranking(args, ids, rows)
    row_of = {i: n for n, i in enumerate(ids)}
    vectors = vectors[[row_of[i] for i in ranked]]
    if args.centre:  # as select.centre_embeddings does: less the pool's mean
        vectors = centre_rows(vectors)
    facts = {
        i: ExampleFacts(leading_verb(r["instruction"]), len(r["output"].split()))
        for i, r in zip(ids, rows, strict=True)
    }

    def chosen(mode: str, max_similarity: float = 0.9) -> tuple[list[str], int]:
        choice = choose(
            ranked,
            args.ratio,
            diversity=mode,
            vectors=vectors,
            max_similarity=max_similarity,
            duplicate_threshold=None,
            seed=args.seed,
        )
        return choice.kept, choice.shortfall

    selections, shortfall, seconds = {}, {}, {}
    for name, mode, similarity in [
        ("top", "none", 0.9),
        *[(f"repr-filter@{s}", "repr-filter", s) for s in args.max_similarity],
        ("k-center", "k-center", 0.9),
    ]:
        start = time.perf_counter()
        selections[name], shortfall[name] = chosen(mode, similarity)
        seconds[name] = round(time.perf_counter() - start, 3)
    selections["random"] = random.Random(args.seed).sample(ranked, len(selections["top"]))
    described = describe_selections(
        ranked, vectors, facts, selections, clusters=args.clusters, coverage_sample=None, seed=args.seed
    )
    profile = cosine_profile(vectors, args.seed)
    report = {
        "source": str(args.source),
        "rows": len(ranked),
        "embedder": str(args.embeddings) if args.embeddings else args.embedder,
        "dim": int(vectors.shape[1]),
        "centred": args.centre,
        "embed_seconds": round(embed_seconds, 1),
        "ranking": args.ranking,
        "ratio": args.ratio,
        "mean_pairwise_cosine": round(profile.pop("mean"), 4),
        "cosines": profile,
        "shortfall": shortfall,
        "select_seconds": seconds,
        **described,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "overlap"}, indent=1))
    print(json.dumps(report["overlap"], indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
