import numpy as np
import pytest

from selectit.core.embeddings import read_embeddings, write_embeddings
from selectit.core.errors import InputError


def test_embeddings_round_trip_as_unit_rows(tmp_path):
    matrix = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    write_embeddings(tmp_path / "e.parquet", ["a", "b", "c"], matrix)
    ids, rows = read_embeddings(tmp_path / "e.parquet")
    assert ids == ["a", "b", "c"]
    assert rows.dtype == np.float32
    np.testing.assert_allclose(rows, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]], atol=1e-3)


def test_embeddings_shape_mismatch_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="2 ids"):
        write_embeddings(tmp_path / "e.parquet", ["a", "b"], np.zeros((3, 4)))
    with pytest.raises(InputError, match="no embeddings"):
        read_embeddings(tmp_path / "missing.parquet")
