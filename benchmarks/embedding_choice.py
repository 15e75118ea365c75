"""Which layer and pooling make a rater's embeddings useful: a small measurement.

For each rater, each example's rating text (the first prompt of params.yaml's settings)
goes through one plain fp32 forward pass keeping every layer's hidden states, and the
example's tokens (what `EncodedText.example_span` marks) are pooled at several depths,
by mean and by last token. Two checks of each choice, no model beyond the rater:

- same task: `dev_pairs.jsonl` holds two responses (by different models) to the same
  AlpacaEval instruction. Each (instruction, response_b) is a query among all the
  (instruction, response_a) examples; a hit is its own pair nearest (recall@1), and MRR.
- same content: on Alpaca-GPT4 examples, the overlap of each example's 10 nearest
  neighbours by embedding with its 10 nearest by TF-IDF cosine of the example text
  (a model-free stand-in for "about the same thing"; chance is about 10/n).

    python benchmarks/embedding_choice.py --pairs 200 --examples 300
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer

from selectit.config import load_params
from selectit.core.records import Example, example_id
from selectit.ingest.formats import read_examples
from selectit.rating.models import load_model, load_tokenizer, resolve
from selectit.rating.texts import RatingTextEncoder
from selectit.rating_params import rating_settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DEPTHS = (0.25, 0.5, 0.75, 1.0)
POOLINGS = ("mean", "last-token")


def pair_examples(path: Path, n: int) -> tuple[list[Example], list[Example]]:
    """Up to n pairs with distinct instructions: (instruction, response_a) and (instruction, response_b)."""
    seen, a, b = set(), [], []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row["instruction"] in seen or not row.get("response_b"):
            continue
        seen.add(row["instruction"])
        for side, out in (("response_a", a), ("response_b", b)):
            text = row[side]
            out.append(
                Example(
                    example_id(row["instruction"], "", text),
                    row["instruction"],
                    "",
                    text,
                    "pairs",
                    len(out),
                    "alpaca",
                    {},
                )
            )
        if len(a) == n:
            break
    return a, b


@torch.inference_mode()
def pooled(model, encoder, prompt, examples, n_layers) -> dict[tuple[float, str], np.ndarray]:
    """Every (depth, pooling) choice's embeddings of `examples`, one forward pass each."""
    layers = {d: max(1, round(d * n_layers)) for d in DEPTHS}
    out = {(d, p): [] for d in DEPTHS for p in POOLINGS}
    for encoded in encoder.encode(examples, prompt):
        start, end = encoded.example_span
        hidden = model(torch.tensor([encoded.ids[:end]]), output_hidden_states=True, logits_to_keep=1).hidden_states
        for depth, layer in layers.items():
            states = hidden[layer][0].float()
            out[(depth, "mean")].append(states[start:end].mean(0).numpy())
            out[(depth, "last-token")].append(states[end - 1].numpy())
    return {key: unit(np.stack(rows)) for key, rows in out.items()}


def unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def retrieval(queries: np.ndarray, corpus: np.ndarray) -> tuple[float, float]:
    similarity = queries @ corpus.T
    own = np.diag(similarity)
    rank = 1 + (similarity > own[:, None]).sum(axis=1)
    return float(np.mean(rank == 1)), float(np.mean(1 / rank))


def knn_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    def neighbours(m):
        s = m @ m.T
        np.fill_diagonal(s, -np.inf)
        return np.argsort(-s, axis=1)[:, :k]

    na, nb = neighbours(a), neighbours(b)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma3-270m"])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--examples", type=int, default=300)
    args = parser.parse_args()
    settings = rating_settings(load_params(args.params).score)
    prompts = settings.prompts()
    side_a, side_b = pair_examples(SHARED / "judged" / "dev_pairs.jsonl", args.pairs)
    pool = read_examples([SHARED / "instructions" / "alpaca_gpt4_sample.json"]).examples[: args.examples]
    texts = [" ".join((e.instruction, e.input, e.output)) for e in pool]
    tfidf = unit(TfidfVectorizer(sublinear_tf=True).fit_transform(texts).toarray())
    print(
        f"{len(side_a)} pairs, {len(pool)} examples; prompts {prompts.version} ({prompts.layout}, {prompts.template})"
    )
    print("| rater | layer | pooling | same task R@1 | same task MRR | kNN@10 overlap with TF-IDF |")
    print("| --- | --- | --- | --- | --- | --- |")
    for spec in args.models:
        source = resolve(spec)
        model = load_model(source, torch.float32, torch.device("cpu")).eval()
        tokenizer = load_tokenizer(source)
        encoder = RatingTextEncoder(tokenizer, prompts, 100_000, source.name)
        n_layers = model.config.get_text_config().num_hidden_layers
        started = time.perf_counter()
        a = pooled(model, encoder, prompts.prompts[0], side_a, n_layers)
        b = pooled(model, encoder, prompts.prompts[0], side_b, n_layers)
        p = pooled(model, encoder, prompts.prompts[0], pool, n_layers)
        seconds = time.perf_counter() - started
        for depth in DEPTHS:
            for pooling in POOLINGS:
                r1, mrr = retrieval(b[(depth, pooling)], a[(depth, pooling)])
                overlap = knn_overlap(p[(depth, pooling)], tfidf)
                layer = f"{max(1, round(depth * n_layers))} of {n_layers} ({depth:g})"
                print(f"| {source.name} | {layer} | {pooling} | {r1:.3f} | {mrr:.3f} | {overlap:.3f} |")
        print(f"({source.name}: {seconds:.0f} s for {len(side_a) * 2 + len(pool)} texts)", flush=True)
    # The baseline the embeddings must beat: TF-IDF itself on the same-task pairs.
    vectoriser = TfidfVectorizer(sublinear_tf=True).fit([" ".join((e.instruction, e.output)) for e in side_a + side_b])
    ta = unit(vectoriser.transform([" ".join((e.instruction, e.output)) for e in side_a]).toarray())
    tb = unit(vectoriser.transform([" ".join((e.instruction, e.output)) for e in side_b]).toarray())
    r1, mrr = retrieval(tb, ta)
    print(f"| TF-IDF (no model) | | | {r1:.3f} | {mrr:.3f} | 1 |")


if __name__ == "__main__":
    main()
