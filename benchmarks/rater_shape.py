"""Write a rater's shape, its config.json and tokenizer without the weights, for
`bench_scoring.py --random-weights` on a machine that cannot fetch the weights.

A rater spec (as in score.raters) gives that rater's shape; `llama2-7b` gives the
shape of LLaMA-2 7B, the smallest of the paper's raters, with the tokenizer of
--tokenizer-from (its vocabulary sets the embedding's size; the LM head runs at
one position per text, so the vocabulary barely changes the scoring time).

    python benchmarks/rater_shape.py smollm2-135m-instruct shapes/smollm2
    python benchmarks/rater_shape.py llama2-7b shapes/llama2-7b --tokenizer-from smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import AutoConfig, LlamaConfig

from selectit.rating.models import load_tokenizer, resolve

# LLaMA-2 7B's published architecture (its config.json on the Hugging Face hub).
LLAMA2_7B = dict(
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    tie_word_embeddings=False,
)
SHAPES = {"llama2-7b": LLAMA2_7B}


def write_shape(spec: str, out: Path, tokenizer_from: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if spec in SHAPES:
        if not tokenizer_from:
            raise SystemExit(f"{spec}: name a rater whose tokenizer to use with --tokenizer-from")
        tokenizer = load_tokenizer(resolve(tokenizer_from))
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **SHAPES[spec],
        )
    else:
        source = resolve(spec)
        tokenizer, config = load_tokenizer(source), AutoConfig.from_pretrained(source.location)
    config.save_pretrained(out)
    tokenizer.save_pretrained(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", help=f"a rater spec or one of: {', '.join(SHAPES)}")
    parser.add_argument("out", type=Path, help="folder to write config.json and the tokenizer to")
    parser.add_argument("--tokenizer-from", help="the rater whose tokenizer a named shape uses")
    args = parser.parse_args()
    write_shape(args.spec, args.out, args.tokenizer_from)
    print(f"wrote {args.out}: {', '.join(sorted(p.name for p in args.out.iterdir()))}")


if __name__ == "__main__":
    main()
