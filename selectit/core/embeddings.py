"""The examples' embeddings as one file: the contract between what writes them (the score
stage, from a rater's own forward pass or a dedicated encoder) and what reads them
(semantic duplicates, diversity-aware selection, coverage in the card and the report).

One Parquet file: `id` (the example id) and `embedding` (a fixed-size list of float16, one
row per example). float16 halves the file against float32 and costs nothing measurable in
cosine similarity at these dimensions; readers get float32 rows of unit length.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from selectit.core.errors import InputError
from selectit.core.io import atomic_write


def embeddings_schema(dim: int) -> pa.Schema:
    return pa.schema([("id", pa.string()), ("embedding", pa.list_(pa.float16(), dim))])


def embeddings_table(ids: Sequence[str], matrix: np.ndarray) -> pa.Table:
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != len(ids):
        raise ValueError(f"embeddings: {len(ids)} ids but a matrix of shape {matrix.shape}")
    dim = matrix.shape[1]
    flat = pa.array(matrix.astype(np.float16).reshape(-1), type=pa.float16())
    column = pa.FixedSizeListArray.from_arrays(flat, dim)
    return pa.Table.from_arrays([pa.array(list(ids), pa.string()), column], schema=embeddings_schema(dim))


def write_embeddings(path: str | Path, ids: Sequence[str], matrix: np.ndarray) -> None:
    table = embeddings_table(ids, matrix)
    atomic_write(path, lambda handle: pq.write_table(table, handle))


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), so a dot product is a cosine."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def read_embeddings(path: str | Path) -> tuple[list[str], np.ndarray]:
    """The ids and a float32 matrix of unit-length rows, in file order."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no embeddings; the score stage writes them (re-run it)")
    table = pq.read_table(path)
    if table.schema.names != ["id", "embedding"]:
        raise InputError(f"{path}: expected columns id, embedding; found {', '.join(table.schema.names)}")
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return table.column("id").to_pylist(), normalise_rows(values.reshape(-1, dim))
