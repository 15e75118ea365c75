"""Content-addressed shard cache for ratings: the unit of resume, reuse and scale-out.

A rater's ratings live in `<cache root>/<rater>/<key>/`, where the key hashes
everything that changes a rating and nothing that depends on where files sit:
the model's content id, the prompt version (prompts, template, cue, K), the
dtype `auto` resolved to, the device type and max length. Each finished shard
is one Parquet file named by the hash of its example ids, plus the rejects of
that shard; the Parquet file is written last and atomically, so its presence
means "done". Re-running therefore rates only examples no finished shard
holds: new rows after an append, or the shards a killed run did not finish.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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
