"""Throughput of the scoring engine against a naive loop, on the same texts, in one run.

The naive loop rates the way the authors' released scripts do: one text per
forward pass, logits for every position, fp32 on the CPU. The engine is
`TransformersRater` with the settings of params.yaml (dtype auto, token budget).
Both read the same token ids, so their scores must agree: the script prints
the Spearman correlation of the token-level scores. It also measures a matmul
peak in the engine's dtype and prints the engine's achieved FLOP rate against it.
With --compile it also runs the engine with `score.compile: true` against the
same naive loop, and reports the compilation's warm-up time.

Both run where `score.device` puts the rater (`--device`): on a GPU the naive
loop runs there too, in fp32, one text at a time.

--random-weights reads only a rater's config.json and tokenizer and draws its
weights at random (the same seed for the engine and the naive loop), for
machines without the weights, such as a GPU machine that cannot download
them. The time of a forward pass does not depend on the weights' values, so
the speed figures hold for the real rater; the score agreement then only
checks the engine's numerics. `benchmarks/rater_shape.py` writes such
folders, including the shape of LLaMA-2 7B (the paper's smallest rater).

    python benchmarks/bench_scoring.py --examples 64
    python benchmarks/bench_scoring.py --examples 64 --compile
    python benchmarks/bench_scoring.py --random-weights --models shapes/llama2-7b --device cuda
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch._dynamo.utils
from scipy.stats import spearmanr

import selectit.rating.engine as engine_module
from selectit.config import load_params
from selectit.ingest.formats import read_examples
from selectit.rating.batching import shared_prefix_groups
from selectit.rating.dtypes import resolve_device
from selectit.rating.engine import MIN_SHARED_PREFIX, TransformersRater, config_context_length
from selectit.rating.models import load_tokenizer, resolve
from selectit.rating.texts import RatingTextEncoder
from selectit.rating_params import rating_settings
from selectit.scoring.formulas import sentence_scores, token_scores

ROOT = Path(__file__).resolve().parents[1]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(dtype: torch.dtype, device: torch.device, seconds: float = 3.0) -> float:
    size = 8192 if device.type == "cuda" else 2048  # large enough to reach each device's peak
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    for _ in range(3):
        a @ b
    synchronize(device)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        runs += 1
        if runs % 10 == 0:  # queued GPU work is done only after a synchronisation
            synchronize(device)
    synchronize(device)
    return 2 * size**3 * runs / (time.perf_counter() - start) / 1e9


def random_weights_model(source, dtype, device, trust_remote_code=False, device_map=None, max_memory=None):
    """The rater built from its config with seeded random weights, on `device`: the
    engine and the naive loop get the same weights. Takes `load_model`'s arguments."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if device_map is not None:
        raise SystemExit(f"--random-weights: {source.name} would be split over GPUs, which this benchmark does not do")
    config = AutoConfig.from_pretrained(source.location, trust_remote_code=trust_remote_code)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)
    return model.eval()


def forward_flops(model, sequences: list[list[int]]) -> float:
    """FLOPs the engine really spends: the decoder on every token it runs (a
    shared prompt prefix once per group, then each suffix), causal attention,
    and the LM head at the last position only. Padding is not counted."""
    config = model.config.get_text_config()
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    head = getattr(head, "head", head).weight  # unwrap the fp32 head of mixed precision
    tied = head.data_ptr() == embedding.data_ptr()
    decoder = sum(p.numel() for p in model.parameters()) - embedding.numel() - (0 if tied else head.numel())
    heads, layers = config.num_attention_heads, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    attention_per_key = 2 * 2 * layers * heads * head_dim  # QK^T and AV, one query-key pair

    def tokens_run(start: int, end: int) -> float:  # positions start..end-1, each attending to all before it
        keys = (end * (end + 1) - start * (start + 1)) / 2
        return 2 * decoder * (end - start) + attention_per_key * keys

    total = 0.0
    for prefix, members in shared_prefix_groups(sequences, MIN_SHARED_PREFIX):
        total += tokens_run(0, prefix)
        total += sum(tokens_run(prefix, len(sequences[i])) + 2 * head.numel() for i in members)
    return total


@torch.inference_mode()
def naive_probs(model, sequences, digit_ids) -> tuple[np.ndarray, float]:
    out, start = [], time.perf_counter()
    device = next(model.parameters()).device
    for ids in sequences:
        logits = model(torch.tensor([ids], device=device)).logits  # every position, as the authors' scripts do
        out.append(torch.softmax(logits[0, -1].float(), dim=-1)[digit_ids].double().cpu().numpy())
    return np.stack(out), time.perf_counter() - start


def engine_run(source, cfg, sequences, digit_ids, compile_model: bool) -> dict:
    """The engine's probabilities and timings, loaded (and compiled) afresh."""
    engine = TransformersRater(source, cfg.dtype, cfg.device, compile=compile_model)
    if engine.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(engine.device)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    # Warm-up: the first batches; with compile this is where most of the compiling happens.
    start = time.perf_counter()
    engine.rate(sequences[:8], digit_ids, cfg.token_budget, progress=False)
    warmup_seconds = time.perf_counter() - start
    warm_graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    start = time.perf_counter()
    probs = engine.rate(sequences, digit_ids, cfg.token_budget, progress=False).probs
    seconds = time.perf_counter() - start
    gpu = engine.device.type == "cuda"
    result = {
        "probs": probs,
        "seconds": seconds,
        "warmup_seconds": warmup_seconds,
        "dtype": engine.dtype,
        # Still compiled at the end (a failed compilation falls back to eager mode).
        "compiled": engine.compiled,
        "graphs_warmup": warm_graphs - graphs,
        # Shapes the warm-up did not cover compile inside the timed run; their time counts.
        "graphs_timed": torch._dynamo.utils.counters["stats"]["unique_graphs"] - warm_graphs,
        "flops": forward_flops(engine.model, sequences),
        "device": engine.device_label,
        "gpu_name": torch.cuda.get_device_name(engine.device) if gpu else None,
        "gpu_peak_memory_gb": torch.cuda.max_memory_allocated(engine.device) / 1e9 if gpu else None,
        "n_params": engine.n_params,
    }
    result["peak"] = matmul_peak_gflops(engine.compute_dtype or next(engine.model.parameters()).dtype, engine.device)
    del engine  # frees the device for the next run and the naive loop
    gc.collect()
    if gpu:
        torch.cuda.empty_cache()
    return result


def bench(spec: str, params, examples, n_prompts: int, compile_model: bool = False) -> list[dict]:
    """One row for the engine as params.yaml sets it, and with --compile one for the compiled engine."""
    cfg = params.score
    source = resolve(spec)
    prompts = rating_settings(cfg).prompts()
    from transformers import AutoConfig

    context_length = config_context_length(AutoConfig.from_pretrained(source.location))
    encoder = RatingTextEncoder(load_tokenizer(source), prompts, context_length, spec)
    digit_ids = encoder.digit_token_ids()
    sequences = [t.ids for p in prompts.prompts[:n_prompts] for t in encoder.encode(examples, p)]
    lengths = [len(s) for s in sequences]

    runs = [engine_run(source, cfg, sequences, digit_ids, cfg.compile)]
    if compile_model and not cfg.compile:
        runs.append(engine_run(source, cfg, sequences, digit_ids, True))

    # fp32 where the engine ran, loaded after the engine has freed the device.
    naive_model = engine_module.load_model(source, torch.float32, resolve_device(cfg.device))
    naive_probs(naive_model, sequences[:2], digit_ids)  # warm-up
    slow, naive_seconds = naive_probs(naive_model, sequences, digit_ids)

    # Sentence level: what selection ranks (texts are ordered prompt-major above).
    def per_example(probs):
        return sentence_scores(token_scores(probs).reshape(n_prompts, -1).T, params.aggregate.alpha)

    rows = []
    for run in runs:
        fast = run["probs"]
        achieved = run["flops"] / run["seconds"] / 1e9
        rows.append(
            {
                "model": spec,
                "texts": len(sequences),
                "mean_tokens": float(np.mean(lengths)),
                "naive_texts_per_s": len(sequences) / naive_seconds,
                "engine_texts_per_s": len(sequences) / run["seconds"],
                "speedup": naive_seconds / run["seconds"],
                "spearman_token_scores": float(spearmanr(token_scores(slow), token_scores(fast)).statistic),
                "spearman_sentence_scores": float(spearmanr(per_example(slow), per_example(fast)).statistic),
                "max_abs_prob_diff": float(np.abs(slow - fast).max()),
                "engine_dtype": run["dtype"],
                "device": run["device"],
                "gpu_name": run["gpu_name"],
                "gpu_peak_memory_gb": run["gpu_peak_memory_gb"],
                "n_params": run["n_params"],
                "compiled": run["compiled"],
                "warmup_seconds": run["warmup_seconds"],
                "graphs_compiled_in_warmup": run["graphs_warmup"],
                "graphs_compiled_in_timed_run": run["graphs_timed"],
                "engine_gflops": achieved,
                "matmul_peak_gflops": run["peak"],
                "fraction_of_peak": achieved / run["peak"],
            }
        )
    return rows


def compiled(row: dict) -> str:
    if not row["compiled"]:
        return ""
    warmup, timed = row["graphs_compiled_in_warmup"], row["graphs_compiled_in_timed_run"]
    return f", compiled: {warmup} graphs in the warm-up, {timed} in the timed run"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--models", nargs="+", help="default: the raters of params.yaml")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--prompts", type=int, help="rating prompts per example (default: score.num_prompts)")
    parser.add_argument("--dtype", help="engine dtype (default: score.dtype)")
    parser.add_argument("--device", help="where both run: auto, cpu, cuda, cuda:N (default: score.device)")
    parser.add_argument("--token-budget", type=int, help="padded tokens per engine pass (default: score.token_budget)")
    parser.add_argument("--source", help="instruction data to read the examples from (default: ingest.source)")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="build each rater from its config with random weights (speed only; see above)",
    )
    parser.add_argument(
        "--compile", action="store_true", help="also run the engine compiled (score.compile: true) on the same texts"
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    overrides = {
        key: value
        for key, value in (
            ("score.dtype", args.dtype),
            ("score.device", args.device),
            ("score.token_budget", args.token_budget),
        )
        if value is not None
    }
    params = load_params(args.params, overrides)
    examples = read_examples([args.source or params.ingest.source]).examples[: args.examples]
    if args.random_weights:
        engine_module.load_model = random_weights_model
    device = resolve_device(params.score.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"torch {torch.__version__}, {where}, {torch.get_num_threads()} threads, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
        + (", random weights" if args.random_weights else "")
    )
    results = []
    for spec in args.models or params.score.raters:
        for r in bench(spec, params, examples, args.prompts or params.score.num_prompts, args.compile):
            results.append(r)
            print(
                f"{r['model']}: {r['texts']} texts (mean {r['mean_tokens']:.0f} tokens) | "
                f"naive {r['naive_texts_per_s']:.2f} texts/s | engine {r['engine_texts_per_s']:.2f} texts/s "
                f"({r['engine_dtype']}{compiled(r)}, warm-up {r['warmup_seconds']:.0f} s) | "
                f"speedup {r['speedup']:.2f}x | Spearman: texts {r['spearman_token_scores']:.4f}, "
                f"examples {r['spearman_sentence_scores']:.4f} | "
                f"{r['engine_gflops']:.0f} GFLOP/s = {100 * r['fraction_of_peak']:.0f}% of the "
                f"{r['matmul_peak_gflops']:.0f} GFLOP/s matmul peak"
                + (f" | peak GPU memory {r['gpu_peak_memory_gb']:.1f} GB" if r["gpu_peak_memory_gb"] else ""),
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
