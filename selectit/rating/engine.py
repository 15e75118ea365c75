"""The transformers backend: token ids in, probabilities of the K rating digits out.

What makes it fast compared with one-text-per-forward scoring:
- length-sorted batches under a token budget, left-padded, so matmuls are large;
- logits for the last position only (the LM head over a 262k vocabulary costs
  more than the rest of Gemma 3 270M when run on every position);
- the rating prompt, which opens every text of that prompt, is run once and
  its keys and values reused for all of them;
- bf16 matmuls where the hardware has native bf16 arithmetic, under autocast:
  weights, the residual stream and the LM head stay fp32, so the digit
  probabilities stay within about 1e-2 of fp32 (pure bf16 weights and logits
  drift enough to reorder the scores: Spearman 0.98 instead of 0.997 on SmolLM2).
Scores do not depend on batch composition: padding is masked and position ids
are counted from each sequence's first real token.

The same pass can keep an embedding per text: one layer's hidden states pooled over
the example's tokens (`EmbeddingSpec`); only that layer's states are kept, and a
shared prefix never reaches into the example, so every pooled token is computed here.

Where the model goes (CPU, one GPU, or several GPUs for a large rater) and
whether `auto` keeps fp32 or bf16 weights is planned in `placement.py`; the
precision names are in `dtypes.py`.
With `compile`, the model's forward pass runs through `torch.compile`, once per
loaded rater, and falls back to eager mode if a path fails to compile.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from selectit.core.errors import ModelLoadError
from selectit.rating.batching import shared_prefix_groups, token_budget_batches
from selectit.rating.dtypes import DTYPES
from selectit.rating.embedding import EmbeddingSpec
from selectit.rating.models import ModelSource, load_model, load_tokenizer
from selectit.rating.placement import plan_for_source

log = logging.getLogger(__name__)

# Shorter shared prefixes are not worth a cached forward pass of their own.
MIN_SHARED_PREFIX = 16


class FullPrecisionHead(torch.nn.Module):
    """Runs the LM head in fp32 outside autocast: logits rounded to bf16 move
    a digit's probability by several percent."""

    def __init__(self, head: torch.nn.Module):
        super().__init__()
        self.head = head

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        with torch.autocast(hidden.device.type, enabled=False):
            return self.head(hidden.float())


@dataclass
class DigitProbabilities:
    probs: np.ndarray  # (n, K) raw next-token probabilities of the digits 1..K
    top_is_digit: np.ndarray  # (n,) whether the most likely next token is one of the digits
    embeddings: np.ndarray | None = None  # (n, hidden) float32, pooled; zero rows for texts not embedded


@dataclass(frozen=True)
class EmbeddingRequest:
    """Which texts of a `rate` call to embed, and how."""

    spans: Sequence[tuple[int, int] | None]  # per text: its example's tokens [start, end), or None: not embedded
    spec: EmbeddingSpec


class TransformersRater:
    def __init__(
        self, source: ModelSource, dtype: str, device: str, trust_remote_code: bool = False, compile: bool = False
    ):
        self.name = source.name
        self.placement = plan_for_source(source, dtype, device, trust_remote_code)
        log.info("rater %s: %s", self.name, self.placement.reason)
        self.dtype = self.placement.dtype
        weights_dtype, self.compute_dtype = DTYPES[self.dtype]
        self.tokenizer = load_tokenizer(source, trust_remote_code)
        self.model = load_model(
            source,
            weights_dtype,
            torch.device(self.placement.device),
            trust_remote_code,
            self.placement.device_map,
            self.placement.max_memory,
        )
        # Inputs go where the embedding is: the placement's device, or the first GPU of a split model.
        self.device = self.model.get_input_embeddings().weight.device
        if self.compute_dtype is not None:
            self.model.set_output_embeddings(FullPrecisionHead(self.model.get_output_embeddings()))
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.n_layers = self.model.config.get_text_config().num_hidden_layers
        self.hidden_size = self.model.config.get_text_config().hidden_size
        self.context_length = config_context_length(self.model.config)
        self.sliding_window = getattr(self.model.config.get_text_config(), "sliding_window", None)
        # transformers renamed `past_key_values` to `cache` during 5.x; accept both.
        self._cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:  # any id works: padded positions are masked out
            self.pad_id = self.tokenizer.eos_token_id or 0
        self.compiled = False
        if compile:
            self._compile()

    @property
    def device_label(self) -> str:
        """Where the model is, for reports: `cpu`, `cuda:0`, or `cuda:0,cuda:1` when split."""
        if self.placement.device_map is None:
            return str(self.device)
        devices = {p.device for p in self.model.parameters()}
        return ",".join(str(d) for d in sorted(devices, key=lambda d: (d.type, d.index or 0)))

    def _compile(self) -> None:
        """Run the forward pass through torch.compile: once per loaded rater, so every
        shard it rates reuses the compiled code. Lengths and batch sizes vary from
        batch to batch, so shapes are compiled dynamic rather than once per shape;
        CUDA graphs ("reduce-overhead") would need fixed shapes and are not used."""
        self._eager_forward = self.model.forward
        self.model.forward = torch.compile(self._eager_forward, dynamic=True)
        self.compiled = True

    def _run_eager(self, exc: Exception) -> None:
        log.warning(
            "rater %s: the compiled model failed (%s: %s); running it uncompiled from now on",
            self.name,
            type(exc).__name__,
            (str(exc).strip().splitlines() or [""])[0],
        )
        self.model.forward = self._eager_forward
        self.compiled = False

    def _with_fallback(self, step, *args):
        """`step(*args)`; if the compiled model fails, once more uncompiled. A step
        builds its inputs (cache copies included) afresh, so the rerun starts clean."""
        try:
            return step(*args)
        except torch.OutOfMemoryError:
            raise  # a batch too large, compiled or not: `rate` halves it
        except Exception as exc:
            if not self.compiled:
                raise
            self._run_eager(exc)
            return step(*args)

    def rate(
        self,
        sequences: Sequence[Sequence[int]],
        digit_ids: Sequence[int],
        token_budget: int,
        progress: bool = True,
        progress_desc: str | None = None,
        embed: EmbeddingRequest | None = None,
    ) -> DigitProbabilities:
        n, k = len(sequences), len(digit_ids)
        probs = np.zeros((n, k), dtype=np.float64)
        top_is_digit = np.zeros(n, dtype=bool)
        embeddings = np.zeros((n, self.hidden_size), dtype=np.float32) if embed else None
        digits = torch.tensor(list(digit_ids), device=self.device)
        # Work items: (shared prefix length, batch); a group's batches stay together
        # so its prefix is computed once and then dropped.
        pending: list[tuple[int, list[int]]] = []
        for prefix_len, members in shared_prefix_groups(sequences, MIN_SHARED_PREFIX):
            if embed:
                prefix_len = _prefix_outside_examples(prefix_len, [embed.spans[i] for i in members])
            suffix_lengths = [len(sequences[i]) - prefix_len for i in members]
            for batch in token_budget_batches(suffix_lengths, token_budget):
                pending.append((prefix_len, [members[j] for j in batch]))
        prefix_key, prefix_cache = None, None
        bar = tqdm(total=n, unit="row", desc=progress_desc or self.name, disable=not progress, smoothing=0.1)
        while pending:
            prefix_len, batch = pending.pop(0)
            prefix = tuple(sequences[batch[0]][:prefix_len])
            if prefix_len and prefix != prefix_key:
                prefix_key, prefix_cache = prefix, self._with_fallback(self._prefix_cache, prefix)
            spans = [embed.spans[i] for i in batch] if embed else None
            try:
                p, top, pooled = self._with_fallback(
                    self._forward, [sequences[i] for i in batch], prefix_len, prefix_cache, digits, spans, embed
                )
            except torch.OutOfMemoryError:
                if len(batch) == 1:
                    raise
                torch.cuda.empty_cache()
                log.warning("out of memory on a batch of %d; retrying as two halves", len(batch))
                half = len(batch) // 2
                pending[:0] = [(prefix_len, batch[:half]), (prefix_len, batch[half:])]
                # Later batches were planned under the same budget: halve them too.
                token_budget = max(1, token_budget // 2)
                pending[2:] = [
                    (plen, [b[j] for j in group])
                    for plen, b in pending[2:]
                    for group in token_budget_batches([len(sequences[i]) - plen for i in b], token_budget)
                ]
                continue
            probs[batch] = p
            top_is_digit[batch] = top
            if pooled is not None:
                embeddings[batch] = pooled
            bar.update(len(batch))
        bar.close()
        return DigitProbabilities(probs, top_is_digit, embeddings)

    def embed(
        self,
        sequences: Sequence[Sequence[int]],
        spans: Sequence[tuple[int, int]],
        spec: EmbeddingSpec,
        token_budget: int,
        progress: bool = True,
        progress_desc: str | None = None,
    ) -> np.ndarray:
        """Embeddings alone, for texts rated before embeddings were kept: the same pass as
        `rate`'s, cut after each example's last token (a causal model's states there do not
        depend on what follows), so they equal the embeddings a rating pass keeps."""
        cut = [list(seq[:end]) for seq, (_, end) in zip(sequences, spans, strict=True)]
        rated = self.rate(
            cut, [self.pad_id], token_budget, progress, progress_desc, EmbeddingRequest(list(spans), spec)
        )
        return rated.embeddings

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.compute_dtype, enabled=self.compute_dtype is not None)

    @torch.inference_mode()
    def _prefix_cache(self, prefix: tuple[int, ...]):
        with self._autocast():
            out = self.model(input_ids=torch.tensor([prefix], device=self.device), use_cache=True, logits_to_keep=1)
        return getattr(out, self._cache_arg)

    @torch.inference_mode()
    def _forward(
        self,
        batch: list[Sequence[int]],
        prefix_len: int,
        prefix_cache,
        digits: torch.Tensor,
        spans: list[tuple[int, int] | None] | None = None,
        embed: EmbeddingRequest | None = None,
    ):
        if prefix_len and self.sliding_window and prefix_len + max(len(s) for s in batch) > self.sliding_window:
            # Sliding-window masks count cached slots, padding included, so a padded
            # suffix behind a cached prefix would see a shifted window: run it whole.
            prefix_len = 0
        suffixes = [s[prefix_len:] for s in batch]
        longest = max(len(s) for s in suffixes)
        input_ids = torch.full((len(batch), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, seq in enumerate(suffixes):
            input_ids[row, longest - len(seq) :] = torch.as_tensor(seq)
            mask[row, longest - len(seq) :] = 1
        # Left padding shifts every real token right; count positions from each
        # sequence's first real token so a text reads the same in any batch.
        positions = prefix_len + (mask.cumsum(-1) - 1).clamp(min=0)
        cache = None
        if prefix_len:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(batch))
            mask = torch.cat([torch.ones((len(batch), prefix_len), dtype=torch.long), mask], dim=1)
        layer = embed.spec.layer(self.n_layers) if embed and any(s is not None for s in spans) else None
        hidden_arg = {} if layer is None else {"output_hidden_states": [layer]}
        with self._autocast():
            out = self.model(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=positions.to(self.device),
                use_cache=cache is not None,
                logits_to_keep=1,
                **{self._cache_arg: cache},
                **hidden_arg,
            )
        logits = out.logits[:, -1].float()
        digits = digits.to(logits.device)  # a split model may return logits on its last GPU
        next_token = torch.softmax(logits, dim=-1)
        top = torch.isin(logits.argmax(dim=-1), digits)
        pooled = None
        if layer is not None:
            # Row r's token t of the whole text sits at column t - prefix_len + (its left padding).
            starts = [longest - len(s) - prefix_len for s in suffixes]
            pooled = _pool(out.hidden_states[layer], spans, starts, embed.spec.pooling)
        return next_token[:, digits].double().cpu().numpy(), top.cpu().numpy(), pooled


def config_context_length(config) -> int:
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(text_config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ModelLoadError(f"cannot tell the context length of {type(config).__name__}; set score.max_length")


def _prefix_outside_examples(prefix_len: int, spans: Sequence[tuple[int, int] | None]) -> int:
    """A shared prefix cut back to end before the first example token of any member that is
    embedded: cached positions yield no hidden states, and pooling needs every example token."""
    starts = [span[0] for span in spans if span is not None]
    if not starts or prefix_len <= min(starts):
        return prefix_len
    return min(starts) if min(starts) >= MIN_SHARED_PREFIX else 0


def _pool(hidden: torch.Tensor, spans: list[tuple[int, int] | None], starts: list[int], pooling: str) -> np.ndarray:
    """One float32 vector per row: the mean (or the last) of its span's hidden states; zeros
    for rows without a span. `starts[r]` is the column of row r's text position 0. One masked
    product for the batch, so a GPU copies the result back once, not once per row."""
    columns = hidden.shape[1]
    first = torch.tensor([span[0] + at if span else 0 for span, at in zip(spans, starts, strict=True)])
    end = torch.tensor([span[1] + at if span else 0 for span, at in zip(spans, starts, strict=True)])
    if pooling == "last-token":
        first = (end - 1).clamp(min=0)
    where = torch.arange(columns)
    weights = ((where >= first[:, None]) & (where < end[:, None])).float()
    weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1)  # rows without a span stay zero
    pooled = torch.bmm(weights.to(hidden.device).unsqueeze(1), hidden.float()).squeeze(1)
    return pooled.cpu().numpy()
