"""The examples' embeddings as one file: the contract between what writes them (the score
stage, from a rater's own forward pass or a dedicated encoder) and what reads them
(semantic duplicates, diversity-aware selection, coverage in the card and the report).

One Parquet file: `id` (the example id) and `embedding` (a fixed-size list of float16, one
row per example). float16 halves the file against float32 and costs nothing measurable in
cosine similarity at these dimensions; readers get float32 rows of unit length. What made
the vectors (model, layer, pooling, dimension) is a JSON record in the file's schema
metadata, read with `read_embeddings_metadata`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from selectit.core.errors import InputError
from selectit.core.io import atomic_write

METADATA_KEY = b"selectit.embeddings"
# Rows per row group: a reader can take the file a group at a time (selection/rows.py)
# rather than the whole column at once.
ROW_GROUP = 4096


def embeddings_schema(dim: int, metadata: dict | None = None) -> pa.Schema:
    schema = pa.schema([("id", pa.string()), ("embedding", pa.list_(pa.float16(), dim))])
    return schema if metadata is None else schema.with_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True)})


def embeddings_table(ids: Sequence[str], matrix: np.ndarray, metadata: dict | None = None) -> pa.Table:
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != len(ids):
        raise ValueError(f"embeddings: {len(ids)} ids but a matrix of shape {matrix.shape}")
    dim = matrix.shape[1]
    flat = pa.array(matrix.astype(np.float16).reshape(-1), type=pa.float16())
    column = pa.FixedSizeListArray.from_arrays(flat, dim)
    return pa.Table.from_arrays([pa.array(list(ids), pa.string()), column], schema=embeddings_schema(dim, metadata))


def write_embeddings(path: str | Path, ids: Sequence[str], matrix: np.ndarray, metadata: dict | None = None) -> None:
    """`metadata`: what made the vectors (model, layer, pooling ...), kept in the file."""
    table = embeddings_table(ids, matrix, metadata)
    atomic_write(path, lambda handle: pq.write_table(table, handle, row_group_size=ROW_GROUP))


def copy_embeddings(source: str | Path, ids: Sequence[str], out: str | Path, metadata: dict) -> int:
    """The rows of `ids`, in that order, from the embeddings file `source` into `out` (its
    metadata and `metadata` recorded). An id the source lacks is an error naming it."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"{source}: no embeddings; the score stage writes them (re-run it)")
    table = pq.read_table(source)
    row_of = {example_id: row for row, example_id in enumerate(table.column("id").to_pylist())}
    missing = [i for i in ids if i not in row_of]
    if missing:
        raise InputError(f"{source}: no embedding of {len(missing)} scored example(s), {missing[0]} first")
    rows = embedding_rows(table)[[row_of[i] for i in ids]] if ids else embedding_rows(table)[:0]
    write_embeddings(out, ids, rows, {**read_embeddings_metadata(source), **metadata, "dim": rows.shape[1]})
    return len(ids)


def read_embeddings_metadata(path: str | Path) -> dict:
    """What made the file's vectors, as `write_embeddings` recorded it ({} if nothing was)."""
    raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def embedding_rows(table: pa.Table) -> np.ndarray:
    """The float16 matrix of an embeddings table, one row per id (no copy to float32)."""
    column = table.column("embedding").combine_chunks()
    if len(column) == 0:
        return np.zeros((0, column.type.list_size), dtype=np.float16)
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, column.type.list_size)


def normalise_rows(matrix: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), so a dot product is a cosine;
    `in_place` scales a float array itself rather than a float32 copy."""
    if not in_place:
        matrix = np.array(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix /= np.where(norms == 0, 1.0, norms)
    return matrix


def centre_rows(matrix: np.ndarray) -> np.ndarray:
    """Float rows less their mean, scaled to unit length again (in place: no second copy of
    the pool), so that a cosine measures how two examples differ within the pool rather than
    the direction all share. A language model's hidden states are anisotropic: SmolLM2's
    middle layer puts two Alpaca examples at cosine 0.92 on average, centred at 0.00
    (docs/results/diversity.md). A zero row stays zero."""
    matrix -= matrix.mean(axis=0, dtype=np.float64).astype(matrix.dtype)
    return normalise_rows(matrix, in_place=True)


def open_embeddings(path: str | Path) -> pq.ParquetFile:
    """The embeddings file, to be read whole or a row group at a time; a missing file or one
    with other columns is an `InputError` naming it."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no embeddings; the score stage writes them (re-run it)")
    source = pq.ParquetFile(path)
    if source.schema_arrow.names != ["id", "embedding"]:
        raise InputError(f"{path}: expected columns id, embedding; found {', '.join(source.schema_arrow.names)}")
    return source


def read_embeddings(path: str | Path) -> tuple[list[str], np.ndarray]:
    """The ids and a float32 matrix of unit-length rows, in file order."""
    table = open_embeddings(path).read()
    return table.column("id").to_pylist(), normalise_rows(embedding_rows(table))
