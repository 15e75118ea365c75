"""A dedicated sentence-embedding model (score.embeddings: encoder), for users who have one.

Any sentence-transformers-style model works: a local folder or a hub id whose root holds a
transformers model and its tokenizer. It runs through transformers' AutoModel, pooled as
the folder's `1_Pooling/config.json` says (mean over the attention mask unless it names the
CLS token), so the sentence-transformers package is not needed. Embeddings are cached per
shard like the raters' (`EmbeddingShards`), keyed by the model's content.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from selectit.core.errors import ModelLoadError
from selectit.core.records import Example
from selectit.rating.models import resolve
from selectit.rating.shards import EmbeddingShards

BATCH = 32
MAX_TOKENS = 512  # the longest input most sentence encoders were trained on


def encoder_text(example: Example) -> str:
    """What the encoder reads of an example: its instruction, input and response."""
    return "\n\n".join(part for part in (example.instruction, example.input, example.output) if part.strip())


class SentenceEncoder:
    def __init__(self, spec: str, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer  # keeps transformers off light commands' import path

        self.source = resolve(spec)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.source.location)
            self.model = AutoModel.from_pretrained(self.source.location).to(device).eval()
        except Exception as exc:
            raise ModelLoadError(f"score.embedding_encoder: cannot load {spec!r}: {exc}") from exc
        self.device = torch.device(device)
        self.pooling = _pooling_mode(Path(self.source.location))
        self.max_tokens = min(MAX_TOKENS, getattr(self.tokenizer, "model_max_length", MAX_TOKENS) or MAX_TOKENS)

    def key_fields(self) -> dict:
        return {"model": self.source.content_id, "pooling": self.pooling, "max_tokens": self.max_tokens, "text": 1}

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), BATCH):
            batch = self.tokenizer(
                list(texts[start : start + BATCH]),
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state.float()
            if self.pooling == "cls":
                rows.append(hidden[:, 0].cpu().numpy())
            else:
                mask = batch["attention_mask"].unsqueeze(-1).float()
                rows.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, self.model.config.hidden_size), dtype=np.float32)

    def shards(self, cache_root: Path) -> EmbeddingShards:
        return EmbeddingShards.keyed(Path(cache_root) / self.source.name, self.key_fields())


def _pooling_mode(folder: Path) -> str:
    """cls where a sentence-transformers folder says its pooling takes the CLS token, else mean."""
    config = folder / "1_Pooling" / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("pooling_mode_cls_token"):
        return "cls"
    return "mean"


def embed_examples(
    encoder: SentenceEncoder, examples_in_shards, cache_root: Path, progress_desc: str | None = None
) -> EmbeddingShards:
    """Every example of `examples_in_shards` (lists of examples) embedded into the encoder's
    shard cache, skipping shards already there; returns the cache."""
    shards = encoder.shards(cache_root)
    done = shards.done_ids()
    about = {"source": "encoder", "model": encoder.source.name, "layer": "last", "pooling": encoder.pooling}
    for examples in examples_in_shards:
        todo = [e for e in examples if e.id not in done]
        if todo:
            shards.write([e.id for e in todo], encoder.embed([encoder_text(e) for e in todo]), about)
    return shards
