"""Content-addressed shard cache for ratings: the unit of resume, reuse and scale-out.

A rater's ratings live in `<cache root>/<rater>/<key>/`, where the key hashes
everything that changes a rating and nothing that depends on where files sit:
the model's content id, the prompt version (prompts, template, cue, K), the
dtype `auto` resolved to, the device type and max length. Each finished shard
is one Parquet file named by the hash of its example ids, plus the rejects of
that shard; the Parquet file is written last and atomically, so its presence
means "done". Re-running therefore rates only examples no finished shard
holds: new rows after an append, or the shards a killed run did not finish.

Embeddings, where a rater makes them, sit beside its ratings in a folder of
their own, `<key>/embeddings/<embedding key>/`, one Parquet file per shard
(`EmbeddingShards`): a cache made before embeddings were kept is the same
cache, and gains only the embeddings.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from selectit.core.embeddings import embedding_rows, embeddings_schema, embeddings_table
from selectit.core.errors import InputError
from selectit.core.io import atomic_write
from selectit.core.records import Example, Reject, iter_example_record_shards
from selectit.scoring.tables import RATINGS_SCHEMA, write_parquet

# Examples per batch when ratings are collected as a stream, and finished shards kept parsed.
COLLECT_BATCH = 1000
OPEN_SHARDS = 4


def _digest(payload: object, length: int = 16) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class ShardRef:
    """Where the examples of one planned shard sit in a records file (validated/examples.jsonl):
    the byte offset of each one's line, in input order. Small and plain, so a plan of a
    million examples fits in memory and a shard can be handed to another process, which
    loads just its own examples."""

    path: str
    offsets: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.offsets)

    def load(self) -> list[Example]:
        with open(self.path, "rb") as handle:
            examples = []
            for offset in self.offsets:
                handle.seek(offset)
                examples.append(Example(**json.loads(handle.readline())))
            return examples


@dataclass(frozen=True)
class ShardPlan:
    """The shards still to rate in a records file, and how many examples the file holds."""

    shards: list[ShardRef]
    total: int

    @property
    def already_rated(self) -> int:
        return self.total - sum(map(len, self.shards))

    def describe(self, rater: str, where: str) -> str:
        """One line for the log; `where` says what rates the shards."""
        done = f"{self.already_rated} of {self.total} examples already rated"
        return f"{rater}: {done}; {len(self.shards)} shards to score {where}"


def plan_shard_refs(records: str | Path, done: set[str], shard_size: int) -> ShardPlan:
    """The examples of a records file that no finished shard holds, in input order, cut into
    shards of `shard_size`, each as a `ShardRef`. Read as a stream: one line in memory at a time."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    refs, offsets, offset, total = [], [], 0, 0
    with open(records, "rb") as handle:
        for line in handle:
            if line.strip():
                total += 1
                if json.loads(line)["id"] not in done:
                    offsets.append(offset)
                    if len(offsets) == shard_size:
                        refs.append(ShardRef(str(records), tuple(offsets)))
                        offsets = []
            offset += len(line)
    if offsets:
        refs.append(ShardRef(str(records), tuple(offsets)))
    return ShardPlan(refs, total)


class ShardCache:
    def __init__(self, root: Path, rater: str, key_fields: dict):
        self.key = _digest(key_fields)
        self.folder = Path(root) / rater / self.key
        self.key_fields = key_fields

    @staticmethod
    def shard_id(examples: Sequence[Example]) -> str:
        return _digest([e.id for e in examples])

    def _finished(self) -> list[Path]:
        return sorted(self.folder.glob("*.parquet"))

    def embedding_shards(self, key_fields: dict) -> EmbeddingShards:
        """The embeddings of this cache's examples made as `key_fields` say (which layer, pooling)."""
        return EmbeddingShards.keyed(self.folder / "embeddings", key_fields)

    def rejected_ids(self) -> set[str]:
        """Ids of examples a finished shard rejected (the rater cannot read them)."""
        return {r["example_id"] for path in self._finished() for r in self._rejects(path)}

    def done_ids(self) -> set[str]:
        """Ids of examples a finished shard holds, rated or rejected."""
        done: set[str] = set()
        for path in self._finished():
            done.update(pq.read_table(path, columns=["example_id"])["example_id"].to_pylist())
            done.update(r["example_id"] for r in self._rejects(path))
        return done

    def write(self, examples: Sequence[Example], ratings: pa.Table, unfit: dict[str, str]) -> Path:
        """Store one finished shard: rejects first, then the Parquet file that marks it done."""
        shard = self.folder / f"{self.shard_id(examples)}.parquet"
        if not (self.folder / "key.json").is_file():
            atomic_write(self.folder / "key.json", lambda f: f.write(json.dumps(self.key_fields, indent=2).encode()))
        rejects = [
            {"example_id": e.id, "source": e.source, "row": e.row, "reason": unfit[e.id], "raw": e.raw}
            for e in examples
            if e.id in unfit
        ]
        atomic_write(shard.with_suffix(".rejects.json"), lambda f: f.write(json.dumps(rejects).encode()))
        write_parquet(ratings, shard)
        return shard

    @staticmethod
    def _rejects(shard: Path) -> list[dict]:
        path = shard.with_suffix(".rejects.json")
        return json.loads(path.read_text()) if path.is_file() else []

    def collect_into(self, records: str | Path, out: str | Path) -> tuple[int, list[Reject]]:
        """Ratings and rejects of exactly the examples of a records file, from the finished
        shards; the ratings written to the Parquet file `out` in the file's order (each
        example's prompts in order), as a stream: memory holds one batch of examples, a few
        parsed shards and an index of example ids (no probabilities beyond a batch).

        Examples can sit in several shards (an earlier run with other rows); each is taken
        from the first that holds it, so re-runs neither duplicate nor lose rows. Returns the
        number of rating rows and the rejects."""
        finished = self._finished()
        home: dict[str, int] = {}  # example id -> the first finished shard (name order) that holds it
        for index, path in enumerate(finished):
            for example_id in pq.read_table(path, columns=["example_id"])["example_id"].to_pylist():
                home.setdefault(example_id, index)
        opened: OrderedDict[int, pa.Table] = OrderedDict()  # the shards read last, most recent at the end

        def shard(index: int) -> pa.Table:
            if index not in opened:
                opened[index] = pq.read_table(finished[index], schema=RATINGS_SCHEMA)
                if len(opened) > OPEN_SHARDS:
                    opened.popitem(last=False)
            opened.move_to_end(index)
            return opened[index]

        wanted: set[str] = set()
        rows = 0

        def write(handle) -> None:
            nonlocal rows
            with pq.ParquetWriter(handle, RATINGS_SCHEMA) as writer:
                for batch in iter_example_record_shards(records, COLLECT_BATCH):
                    position = {e.id: i for i, e in enumerate(batch)}
                    wanted.update(position)
                    by_shard: dict[int, list[str]] = {}
                    for example_id in position:
                        if example_id in home:
                            by_shard.setdefault(home[example_id], []).append(example_id)
                    parts = []
                    for index, ids in sorted(by_shard.items()):
                        table = shard(index)
                        parts.append(table.filter(pc.is_in(table["example_id"], pa.array(ids, pa.string()))))
                    table = pa.concat_tables(parts) if parts else RATINGS_SCHEMA.empty_table()
                    ids, prompts = table["example_id"].to_pylist(), table["prompt_id"].to_pylist()
                    order = sorted(range(table.num_rows), key=lambda i: (position[ids[i]], prompts[i]))
                    writer.write_table(table.take(pa.array(order, pa.int64())))
                    rows += table.num_rows

        atomic_write(out, write)
        rejects: dict[str, Reject] = {}
        for path in finished:  # rejects are few: read after the ratings, in shard order
            for r in self._rejects(path):
                if r["example_id"] in wanted:
                    rejects.setdefault(r["example_id"], Reject(r["source"], r["row"], None, r["reason"], r["raw"]))
        return rows, list(rejects.values())


class EmbeddingShards:
    """One embedding per example, a Parquet file per shard (`id`, float16 `embedding`, as the
    embeddings file has them), named by the hash of its ids and written atomically: a file
    there is a finished shard."""

    def __init__(self, folder: Path, key_fields: dict):
        self.folder = Path(folder)
        self.key_fields = key_fields

    @classmethod
    def keyed(cls, parent: Path, key_fields: dict) -> EmbeddingShards:
        """The shards under `parent` in the folder named by the hash of `key_fields`."""
        return cls(Path(parent) / _digest(key_fields), key_fields)

    def _finished(self) -> list[Path]:
        return sorted(self.folder.glob("*.parquet"))

    def done_ids(self) -> set[str]:
        return {i for path in self._finished() for i in pq.read_table(path, columns=["id"])["id"].to_pylist()}

    def write(self, ids: Sequence[str], matrix: np.ndarray, about: dict | None = None) -> Path:
        """Store one shard; `about` (the layer index a depth came to, ...) joins the key in key.json."""
        shard = self.folder / f"{_digest(list(ids))}.parquet"
        if not (self.folder / "key.json").is_file():
            record = {**self.key_fields, **(about or {})}
            atomic_write(self.folder / "key.json", lambda f: f.write(json.dumps(record, indent=2).encode()))
        table = embeddings_table(ids, matrix)
        atomic_write(shard, lambda handle: pq.write_table(table, handle))
        return shard

    def about(self) -> dict:
        """The key and what the writer added to it (key.json); the key alone before any shard is written."""
        path = self.folder / "key.json"
        return json.loads(path.read_text()) if path.is_file() else dict(self.key_fields)

    def collect_into(self, ids: Sequence[str], out: str | Path, metadata: dict) -> int:
        """The embeddings of `ids`, in that order, written to the embeddings file `out` batch by
        batch (memory holds a batch and a few parsed shards); each id from the first shard that
        holds it. An id no shard holds is an error: its shard was never embedded."""
        finished = self._finished()
        home: dict[str, int] = {}
        for index, path in enumerate(finished):
            for example_id in pq.read_table(path, columns=["id"])["id"].to_pylist():
                home.setdefault(example_id, index)
        missing = [i for i in ids if i not in home]
        if missing:
            raise InputError(f"{self.folder}: no embedding of {len(missing)} example(s), {missing[0]} first")
        opened: OrderedDict[int, tuple[dict[str, int], np.ndarray]] = OrderedDict()

        def shard(index: int) -> tuple[dict[str, int], np.ndarray]:
            if index not in opened:
                table = pq.read_table(finished[index])
                opened[index] = ({i: row for row, i in enumerate(table["id"].to_pylist())}, embedding_rows(table))
                if len(opened) > OPEN_SHARDS:
                    opened.popitem(last=False)
            opened.move_to_end(index)
            return opened[index]

        dim = int(pq.read_schema(finished[0]).field("embedding").type.list_size) if finished else 0

        def write(handle) -> None:
            with pq.ParquetWriter(handle, embeddings_schema(dim, {**metadata, "dim": dim})) as writer:
                for start in range(0, len(ids), COLLECT_BATCH):
                    batch = list(ids[start : start + COLLECT_BATCH])
                    rows = np.zeros((len(batch), dim), dtype=np.float16)
                    for position, example_id in enumerate(batch):
                        where, matrix = shard(home[example_id])
                        rows[position] = matrix[where[example_id]]
                    writer.write_table(embeddings_table(batch, rows, {**metadata, "dim": dim}))

        atomic_write(out, write)
        return len(ids)
