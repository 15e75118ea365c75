"""Instruction-following difficulty (IFD; Cherry LLM, Superfiltering): a likelihood score.

IFD = (mean token loss of the response given the instruction)
      / (mean token loss of the response alone).

Near 1 the instruction does not help the model predict the response; well
below 1 it does. Both losses are over the same response tokens: the response
is tokenised once, cut at `max_response_tokens`, and put behind the Alpaca
prompt (the conditioned pass) or behind nothing but a start token (the alone
pass), so the two means differ only in what precedes the response.

What makes it affordable on a CPU:
- logits only for the response positions (`logits_to_keep`): with left padding
  every sequence ends at the last position, so the response positions of a batch
  are its last ones; the LM head over Gemma's 262k vocabulary costs more than
  the rest of the model per position;
- batches of similar length under two budgets, padded tokens and logit rows;
- losses cached per chunk of examples under a key of everything that changes
  them, so a re-run computes nothing and a killed run resumes.

An example whose conditioned pass does not fit the model's context is not
scored: its losses are NaN and `unrated` says why, so a caller lists it (the
select stage's rejects ledger), never drops it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from selectit.core.catalog import rater_name
from selectit.core.io import atomic_write
from selectit.core.records import Example
from selectit.rating.dtypes import resolve_device
from selectit.rating.models import load_model, load_tokenizer, resolve

log = logging.getLogger(__name__)

FORMAT = "alpaca-v1"  # the prompt below; part of the cache key
# The Stanford Alpaca prompt, as the IFD papers use it; the response follows on a new line.
ALPACA_PROMPT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
ALPACA_PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
CHUNK = 100  # examples per cached file: the unit of resume
LOSS_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("loss_conditioned", pa.float64()),  # mean response token loss given the instruction
        ("loss_alone", pa.float64()),  # mean loss of the same tokens behind a start token only
        ("response_tokens", pa.int32()),
        ("truncated", pa.bool_()),
        ("unrated", pa.string()),  # why the losses are missing (null when they are not)
    ]
)
SCHEMA_VERSION = 2  # part of the cache key: version 1 files had no `unrated` column


def alpaca_prompt(instruction: str, input: str) -> str:
    if input.strip():
        return ALPACA_PROMPT_WITH_INPUT.format(instruction=instruction, input=input)
    return ALPACA_PROMPT.format(instruction=instruction)


def ifd_scores(loss_conditioned: np.ndarray, loss_alone: np.ndarray) -> np.ndarray:
    """IFD = conditioned loss / loss alone; NaN where the loss alone is not positive (no response tokens)."""
    conditioned = np.asarray(loss_conditioned, dtype=np.float64)
    alone = np.asarray(loss_alone, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(alone > 0, conditioned / alone, np.nan)


@dataclass(frozen=True)
class LossItem:
    """One forward pass's token ids; its last `scored` tokens are the response."""

    ids: list[int]
    scored: int


def pack_batches(items: Sequence[LossItem], token_budget: int, logit_budget: int) -> list[list[int]]:
    """Indices of `items` in batches, longest first, so that batch size times the longest
    sequence stays within `token_budget` and batch size times the most scored positions
    (plus one) within `logit_budget`; an item over either budget gets a batch of its own."""
    order = sorted(range(len(items)), key=lambda i: (-len(items[i].ids), i))
    batches: list[list[int]] = []
    current: list[int] = []
    scored = 0  # the most scored positions in `current`
    for index in order:
        size, longest = len(current) + 1, len(items[current[0]].ids) if current else len(items[index].ids)
        most = max(scored, items[index].scored + 1)
        if current and (size * longest > token_budget or size * most > logit_budget):
            batches.append(current)
            current, most = [], items[index].scored + 1
        current.append(index)
        scored = most
    if current:
        batches.append(current)
    return batches


class ResponseLossModel:
    """A causal LM that gives the mean token loss of responses, with and without their instruction."""

    def __init__(
        self,
        model,
        tokenizer,
        device,
        max_response_tokens: int,
        token_budget: int,
        logit_budget: int,
        max_positions: int | None = None,
    ):
        self.model, self.tokenizer, self.device = model, tokenizer, device
        # The model's context: a longer conditioned pass would be read past what it was trained on.
        self.max_positions = max_positions or getattr(model.config, "max_position_embeddings", None)
        self.max_response_tokens = max_response_tokens
        self.token_budget, self.logit_budget = token_budget, logit_budget
        # One start token begins both passes, so the first response token is predicted in both.
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is None:
            raise ValueError("IFD needs a tokenizer with a BOS or EOS token to start the response-alone pass")
        self.start = int(start)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.start

    def sequences(self, example: Example) -> tuple[LossItem, LossItem, bool]:
        """The conditioned and the alone pass of one example, and whether its response was cut."""
        response = self.tokenizer(example.output, add_special_tokens=False)["input_ids"]
        truncated = len(response) > self.max_response_tokens
        response = response[: self.max_response_tokens]
        prompt = self.tokenizer(alpaca_prompt(example.instruction, example.input), add_special_tokens=False)
        conditioned = [self.start, *prompt["input_ids"], *response]
        return LossItem(conditioned, len(response)), LossItem([self.start, *response], len(response)), truncated

    def mean_losses(self, items: Sequence[LossItem]) -> np.ndarray:
        """Mean next-token loss over each item's scored (last) tokens; NaN for an item with none."""
        losses = np.full(len(items), np.nan)
        for batch in pack_batches(items, self.token_budget, self.logit_budget):
            todo = [i for i in batch if items[i].scored > 0]
            if todo:
                losses[todo] = self._batch([items[i] for i in todo])
        return losses

    def _batch(self, items: Sequence[LossItem]) -> np.ndarray:
        longest = max(len(s.ids) for s in items)
        keep = max(s.scored for s in items) + 1  # the positions that predict the scored tokens, and the last
        input_ids = torch.full((len(items), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=torch.long)
        for row, s in enumerate(items):
            input_ids[row, longest - len(s.ids) :] = torch.as_tensor(s.ids)
            mask[row, longest - len(s.ids) :] = 1
        # Positions counted from each sequence's first real token: left padding changes nothing.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.model(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=positions.to(self.device),
                logits_to_keep=keep,
            ).logits.float()
            # logits[:, j] is the prediction after position longest - keep + j; the last one predicts
            # past the end, so the scored tokens' predictions are the `scored` before it.
            log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
            out = []
            for row, s in enumerate(items):
                targets = torch.as_tensor(s.ids[len(s.ids) - s.scored :], device=log_probs.device)
                picked = log_probs[row, keep - 1 - s.scored :].gather(-1, targets[:, None])
                out.append(float(-picked.mean()))
        return np.array(out)

    def losses(self, examples: Sequence[Example]) -> pa.Table:
        """Both mean losses of every example's response, as a LOSS_SCHEMA table; an example
        too long for the model's context gets none, and the reason."""
        pairs = [self.sequences(e) for e in examples]
        unrated = [self._unfit(p[0]) for p in pairs]
        items = [LossItem(p[0].ids, 0) if why else p[0] for p, why in zip(pairs, unrated, strict=True)]
        items += [LossItem(p[1].ids, 0) if why else p[1] for p, why in zip(pairs, unrated, strict=True)]
        mean = self.mean_losses(items)
        n = len(examples)
        return pa.table(
            {
                "example_id": [e.id for e in examples],
                "loss_conditioned": mean[:n],
                "loss_alone": mean[n:],
                "response_tokens": np.array([p[0].scored for p in pairs], dtype=np.int32),
                "truncated": np.array([p[2] for p in pairs], dtype=bool),
                "unrated": unrated,
            },
            schema=LOSS_SCHEMA,
        )

    def _unfit(self, conditioned: LossItem) -> str | None:
        if self.max_positions is not None and len(conditioned.ids) > self.max_positions:
            return (
                f"too long for IFD: the instruction and response take {len(conditioned.ids)} tokens, "
                f"the model's context is {self.max_positions}"
            )
        return None


class LossCache:
    """Response losses of one model under one key: a Parquet file per finished chunk of examples."""

    def __init__(self, root: Path, rater: str, key_fields: dict):
        self.key_fields = key_fields
        key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = Path(root) / rater / key

    def _files(self) -> list[Path]:
        return sorted(self.folder.glob("*.parquet"))

    def done_ids(self) -> set[str]:
        return {
            e for path in self._files() for e in pq.read_table(path, columns=["example_id"])["example_id"].to_pylist()
        }

    def write(self, table: pa.Table) -> None:
        ids = table["example_id"].to_pylist()
        name = hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]
        if not (self.folder / "key.json").is_file():
            atomic_write(self.folder / "key.json", lambda f: f.write(json.dumps(self.key_fields, indent=2).encode()))
        atomic_write(self.folder / f"{name}.parquet", lambda f: pq.write_table(table, f))

    def collect(self, ids: Sequence[str]) -> pa.Table:
        """The cached rows of these ids, each once, in their order."""
        wanted = set(ids)
        rows: dict[str, dict] = {}
        for path in self._files():
            for row in pq.read_table(path, schema=LOSS_SCHEMA).to_pylist():
                if row["example_id"] in wanted:
                    rows.setdefault(row["example_id"], row)
        return pa.Table.from_pylist([rows[i] for i in ids if i in rows], schema=LOSS_SCHEMA)


@dataclass
class IfdRun:
    rater: str
    losses: pa.Table  # LOSS_SCHEMA, one row per example
    seconds: float  # spent computing (0 when every loss came from the cache)
    computed: int  # examples whose losses were computed in this run

    def unrated(self) -> dict[str, str]:
        """Example id -> why it has no IFD (it does not fit the model's context)."""
        reasons = self.losses["unrated"].to_pylist()
        return {e: r for e, r in zip(self.losses["example_id"].to_pylist(), reasons, strict=True) if r}

    def scores(self) -> dict[str, float]:
        """Example id -> IFD."""
        ifd = ifd_scores(self.losses["loss_conditioned"].to_numpy(), self.losses["loss_alone"].to_numpy())
        return dict(zip(self.losses["example_id"].to_pylist(), ifd.tolist(), strict=True))


def response_losses(
    examples: Sequence[Example],
    spec: str,
    cache_root: Path,
    *,
    max_response_tokens: int,
    device: str,
    token_budget: int,
    trust_remote_code: bool,
    logit_budget: int = 512,
    progress: bool = True,
) -> IfdRun:
    """Both response losses of every example with rater model `spec`, through the loss cache
    (the model loads only when some example is not cached)."""
    source = resolve(spec, trust_remote_code)
    torch_device = resolve_device(device)
    # Losses in fp32 whatever the rating dtype: they are means of log-probabilities, where bf16 logits drift.
    key = {
        "model": source.content_id,
        "format": FORMAT,
        "max_response_tokens": max_response_tokens,
        "dtype": "float32",
        "device": torch_device.type,
        "schema": SCHEMA_VERSION,
    }
    cache = LossCache(Path(cache_root), rater_name(spec), key)
    unique = list({e.id: e for e in examples}.values())
    done = cache.done_ids()
    todo = [e for e in unique if e.id not in done]
    started, seconds = time.perf_counter(), 0.0
    if todo:
        model = load_model(source, torch.float32, torch_device, trust_remote_code)
        scorer = ResponseLossModel(
            model,
            load_tokenizer(source, trust_remote_code),
            torch_device,
            max_response_tokens,
            token_budget,
            logit_budget,
        )
        chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]
        for chunk in tqdm(chunks, unit="chunk", desc=f"IFD {source.name}", disable=not progress):
            cache.write(scorer.losses(chunk))
        seconds = time.perf_counter() - started
        log.info("IFD losses of %d responses with %s in %.0f s", len(todo), source.name, seconds)
    return IfdRun(rater_name(spec), cache.collect([e.id for e in unique]), round(seconds, 1), len(todo))
