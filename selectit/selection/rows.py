"""The ranked pool's embeddings as rows read a block at a time, so that diversity-aware
selection holds what it keeps, never the whole pool.

The select stage walks a ranking (best first) over unit embeddings. Held in memory, the
pool's matrix is 4 x dim bytes a row (114 MB at 52K rows of SmolLM2's 576): the one part of
the walk that grows with the pool. `ranked_vectors` writes the rows instead, in ranking
order, as float16 to an unnamed temporary file (2 x dim bytes a row, gone when closed),
and the walks read the rows they need a block at a time (`row_blocks`). A read is a
positioned read of the file, not a memory map, so the rows read do not stay in the
process's memory. A plain array (tests, small pools) is read the same way (`as_rows`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from selectit.core.embeddings import normalise_rows, open_embeddings
from selectit.core.errors import InputError

ROW_BLOCK = 1024  # rows a walk reads at once: 2.3 MB of float32 at 576 dimensions


class RankedRows(Protocol):
    """Unit rows in ranking order (position 0 is the best-ranked example)."""

    dim: int

    def __len__(self) -> int: ...

    def take(self, positions: np.ndarray) -> np.ndarray:
        """float32 unit rows at these positions, in the order given."""
        ...


class MatrixRows:
    """Rows of an in-memory matrix."""

    def __init__(self, matrix: np.ndarray):
        self.matrix = matrix
        self.dim = matrix.shape[1]

    def __len__(self) -> int:
        return len(self.matrix)

    def take(self, positions: np.ndarray) -> np.ndarray:
        return np.asarray(self.matrix[positions], dtype=np.float32)


class SubsetRows:
    """Some positions of other rows, as rows of their own (position i is `positions[i]`)."""

    def __init__(self, source: RankedRows, positions: np.ndarray):
        self.source, self.positions, self.dim = source, np.asarray(positions, dtype=np.int64), source.dim

    def __len__(self) -> int:
        return len(self.positions)

    def take(self, positions: np.ndarray) -> np.ndarray:
        return self.source.take(self.positions[positions])


class RowFile:
    """float16 unit rows in a file; each read is scaled to unit length again in float32,
    so that an example and its exact copy are at cosine 1 whatever float16 rounding did."""

    def __init__(self, handle, count: int, dim: int):
        self._handle, self._count, self.dim = handle, count, dim
        self._row_bytes = 2 * dim

    def __len__(self) -> int:
        return self._count

    def take(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        out = np.empty((len(positions), self.dim), dtype=np.float16)
        for first, last in _runs(positions):  # a block of the ranking is one read
            view = memoryview(out[first:last]).cast("B")
            done = os.preadv(self._handle.fileno(), [view], int(positions[first]) * self._row_bytes)
            if done != len(view):
                raise OSError(f"embeddings row file: read {done} of {len(view)} bytes at row {positions[first]}")
        return normalise_rows(out)

    def close(self) -> None:
        self._handle.close()


def as_rows(vectors: RankedRows | np.ndarray) -> RankedRows:
    return MatrixRows(vectors) if isinstance(vectors, np.ndarray) else vectors


def row_blocks(rows: RankedRows, size: int = ROW_BLOCK) -> Iterator[tuple[int, np.ndarray]]:
    """(first position, its block of rows), from the best-ranked on."""
    for start in range(0, len(rows), size):
        yield start, rows.take(np.arange(start, min(len(rows), start + size)))


def ranked_vectors(path: Path, ranked: Sequence[str], centre: bool) -> RowFile:
    """The unit embeddings of `ranked` (ids best first) from the embeddings file, one row
    each in that order; `centre` (select.centre_embeddings): less the mean of these rows,
    the pool's, then scaled to unit length again (core/embeddings.py: centre_rows).

    Two passes over the file a row group at a time (the mean, then the rows), so memory
    holds one group, not the pool."""
    source = open_embeddings(path)
    dim = source.schema_arrow.field("embedding").type.list_size
    position_of = {example_id: position for position, example_id in enumerate(ranked)}
    found = np.zeros(len(ranked), dtype=bool)
    total = np.zeros(dim, dtype=np.float64)
    for positions, matrix in _batches(source, position_of):
        found[positions] = True
        total += matrix.sum(axis=0, dtype=np.float64)
    if not found.all():
        missing = ranked[int(np.argmin(found))]
        raise InputError(
            f"{path}: {int((~found).sum())} of {len(ranked)} scored examples (e.g. {missing}) have no embedding; "
            "the embeddings come from another run: run the score stage again"
        )
    mean = (total / max(1, len(ranked))).astype(np.float32)
    # Unnamed, removed when closed; it outlives this function, so it is no `with` block.
    handle = tempfile.TemporaryFile(prefix="selectit-ranked-rows-")  # noqa: SIM115
    row_bytes = 2 * dim
    os.ftruncate(handle.fileno(), len(ranked) * row_bytes)
    for positions, matrix in _batches(source, position_of):
        if centre:
            matrix = normalise_rows(matrix - mean, in_place=True)
        order = np.argsort(positions)
        positions, stored = positions[order], matrix[order].astype(np.float16)
        for first, last in _runs(positions):  # the file in ranking order is one write a group
            os.pwrite(handle.fileno(), stored[first:last].tobytes(), int(positions[first]) * row_bytes)
    return RowFile(handle, len(ranked), dim)


def _runs(positions: np.ndarray) -> Iterator[tuple[int, int]]:
    """[first, last) index ranges of `positions` that hold consecutive positions."""
    starts = np.flatnonzero(np.diff(positions, prepend=-2) != 1).tolist()
    return zip(starts, [*starts[1:], len(positions)], strict=True)


def _batches(source: pq.ParquetFile, position_of: dict[str, int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per row group of the file: the ranking positions of its ranked ids and their unit rows.
    A group at a time (the score stage writes groups of 4,096 rows), and the float16 values
    taken from the column's buffer as they are: pyarrow's own float16 conversion and its
    batch reader's read-ahead each cost more memory than the rows."""
    for group in range(source.metadata.num_row_groups):
        table = source.read_row_group(group, use_threads=False)
        positions = np.fromiter((position_of.get(i, -1) for i in table.column(0).to_pylist()), dtype=np.int64)
        column = table.column(1).combine_chunks()
        values = column.flatten()  # the rows' values, this group's slice
        flat = np.frombuffer(values.buffers()[1], dtype=np.float16)[values.offset : values.offset + len(values)]
        ranked_here = positions >= 0
        rows = normalise_rows(flat.reshape(-1, column.type.list_size)[ranked_here])
        del table, column, values, flat
        pa.default_memory_pool().release_unused()
        yield positions[ranked_here], rows
