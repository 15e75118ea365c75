"""Measure a stronger learner for the `learned` selector: a linear probe on response embeddings.

Each response of the first N judged pairs is embedded by a mean-pooled forward pass of a
model (the last hidden state averaged over the tokens of "instruction, input, response"),
and the same pairwise model as `learned` (selectit/scoring/pairwise.py: logistic regression
on standardised differences, L2 strength by cross-validation, folds grouped by instruction)
is fitted on the embeddings, alone and with the two length features. Agreement is of
out-of-fold scores only, on all pairs and on the pairs where the shorter response wins,
with percentile bootstrap intervals; CPU seconds are printed beside it.

    python benchmarks/selector_learners.py ../shared/data/judged/dev_pairs.jsonl --limit 100
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from selectit.audit.learned import token_lengths
from selectit.audit.pairs import pair_examples, read_pairs
from selectit.evaluation.stats import bootstrap_ci
from selectit.rating.models import load_model, load_tokenizer, resolve
from selectit.scoring.features import LENGTH_FEATURES, FeatureTable, with_columns
from selectit.scoring.pairwise import PairData, fit_pairwise


def embed(texts: list[str], spec: str, batch: int, max_tokens: int) -> np.ndarray:
    """Mean-pooled last hidden states, one row per text (fp32, CPU)."""
    source = resolve(spec)
    tokenizer = load_tokenizer(source)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_model(source, torch.float32, torch.device("cpu"))
    rows = []
    for start in range(0, len(texts), batch):
        encoded = tokenizer(
            texts[start : start + batch], return_tensors="pt", padding=True, truncation=True, max_length=max_tokens
        )
        with torch.inference_mode():
            hidden = model(**encoded, output_hidden_states=True).hidden_states[-1]
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        rows.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    return np.vstack(rows)


def agreement_line(name: str, data: PairData, folds: int, shorter_wins: np.ndarray) -> None:
    started = time.process_time()
    model = fit_pairwise(data, folds, seed=0, key=name)
    seconds = time.process_time() - started
    wins = np.asarray(model.cv_outcomes) == 1
    print(f"| {name} | {agreement_cells(wins, shorter_wins)} | {seconds:.1f} s fit (CPU) | C={model.c:.3g} |")


def agreement_cells(wins: np.ndarray, shorter_wins: np.ndarray) -> str:
    """Two table cells: agreement on all pairs and on the pairs the shorter response wins, with
    95% bootstrap intervals (reward_model.py prints its row with these too)."""
    overall = bootstrap_ci(wins, resamples=2000, level=0.95, seed=0)
    shorter = bootstrap_ci(wins[shorter_wins], resamples=2000, level=0.95, seed=0)
    return (
        f"{overall.estimate:.1%} [{overall.low:.1%}, {overall.high:.1%}] "
        f"| {shorter.estimate:.1%} [{shorter.low:.1%}, {shorter.high:.1%}] (n={int(shorter_wins.sum())})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=512)
    args = parser.parse_args()

    pairs = read_pairs(args.pairs, args.limit).pairs
    examples = pair_examples(pairs, args.pairs)
    texts = [
        f"{e.instruction}\n{e.input}\n\n{e.output}" if e.input.strip() else f"{e.instruction}\n\n{e.output}"
        for e in examples
    ]
    started, cpu = time.perf_counter(), time.process_time()
    vectors = embed(texts, args.model, args.batch, args.max_tokens)
    print(
        f"embedded {len(texts)} responses with {args.model} in {time.perf_counter() - started:.0f} s "
        f"wall, {time.process_time() - cpu:.0f} s CPU ({vectors.shape[1]} dimensions)"
    )
    ids = [e.id for e in examples]
    names = [f"emb_{i}" for i in range(vectors.shape[1])]
    embeddings = FeatureTable(ids, names, vectors)
    with_length = with_columns(embeddings, token_lengths(examples, args.model, False))

    preferred = [p.example_id(p.preferred) for p in pairs]
    other = [p.example_id(p.other) for p in pairs]
    shorter_wins = np.array([len(p.response(p.preferred)) < len(p.response(p.other)) for p in pairs])

    def data(table: FeatureTable) -> PairData:
        return PairData(
            table.names,
            table.rows(preferred),
            table.rows(other),
            [f"{p.instruction}\n{p.input}" for p in pairs],
            [p.pair_id for p in pairs],
            preferred,
            other,
        )

    print(f"\n{len(pairs)} pairs, {args.folds}-fold out-of-fold agreement\n")
    print("| learner | all pairs | shorter response wins | cost | regularisation |")
    print("| --- | --- | --- | --- | --- |")
    agreement_line("embedding probe", data(embeddings), args.folds, shorter_wins)
    agreement_line("embedding probe + length", data(with_length), args.folds, shorter_wins)
    length_only = FeatureTable(ids, list(LENGTH_FEATURES), with_length.values[:, -2:])
    agreement_line("length features alone (same model)", data(length_only), args.folds, shorter_wins)


if __name__ == "__main__":
    main()
