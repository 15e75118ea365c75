"""Embeddings kept from a rater's own rating pass, in its shard cache, and a dedicated encoder's."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from helpers import tiny_examples, write_params

from selectit.config import load_params
from selectit.core.embeddings import embedding_rows, read_embeddings_metadata
from selectit.core.records import write_example_records
from selectit.rating.embedding import RATER_EMBEDDING
from selectit.rating.keys import rater_cache
from selectit.rating.rate import RaterSession, rate_records
from selectit.rating_params import rating_settings

pytestmark = pytest.mark.usefixtures("isolated_caches")


@pytest.fixture
def settings(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", "tiny.json", [str(tiny_model)], shard_size=2)
    return rating_settings(load_params(params).score)


@pytest.fixture
def records(tmp_path):
    path = tmp_path / "examples.jsonl"
    write_example_records(tiny_examples(), path)
    return path


def _session(root, tiny_model, settings, embedding=RATER_EMBEDDING) -> RaterSession:
    return RaterSession(str(tiny_model), settings, rater_cache(root, str(tiny_model), settings), embedding)


def _stored(path) -> tuple[list[str], np.ndarray]:
    table = pq.read_table(path)
    return table["id"].to_pylist(), embedding_rows(table).astype(np.float32)


def test_an_embedding_is_the_plain_forward_pass_pooled_over_the_example(tmp_path, tiny_model, settings, records):
    session = _session(tmp_path / "shards", tiny_model, settings)
    rated = rate_records(session, records, tmp_path / "ratings.parquet", False, embeddings_out=tmp_path / "emb.parquet")
    ids, matrix = _stored(rated.embeddings)
    assert ids == [e.id for e in tiny_examples()]

    # One example (the one with an input), by hand: the first prompt's rating text through the
    # model, the states of the layer at 3/4 depth over the example's own tokens, averaged.
    loaded = session.loaded
    example = tiny_examples()[1]
    (encoded,) = loaded.encoder.encode([example], loaded.prompts.prompts[0])
    start, end = encoded.example_span
    assert loaded.rater.tokenizer.decode(encoded.ids[start:end]).startswith(example.instruction)
    assert loaded.rater.tokenizer.decode(encoded.ids[start:end]).endswith(example.output)
    layer = RATER_EMBEDDING.layer(loaded.rater.n_layers)
    with torch.no_grad():
        hidden = loaded.rater.model(torch.tensor([encoded.ids]), output_hidden_states=True).hidden_states[layer]
    expected = hidden[0, start:end].float().mean(dim=0).numpy()
    # Stored as float16: within its rounding (about 1e-3 of the largest entry).
    np.testing.assert_allclose(matrix[1], expected, rtol=0, atol=2e-3 * np.abs(expected).max())

    about = read_embeddings_metadata(rated.embeddings)
    assert about["layer"] == layer == 2 and about["of_layers"] == 2  # round(0.75 x 2): the tiny Llama's last
    assert about["pooling"] == "mean" and about["dim"] == 64 and about["model"] == "tiny-llama"


def test_a_cache_rated_before_embeddings_gains_them_without_rating_again(tmp_path, tiny_model, settings, records):
    root = tmp_path / "shards"
    old_session = _session(root, tiny_model, settings, embedding=None)
    before = rate_records(old_session, records, tmp_path / "old.parquet", False)
    assert before.texts_run == 12 and before.embeddings is None  # 6 examples x 2 prompts

    session = _session(root, tiny_model, settings)
    rated = rate_records(session, records, tmp_path / "new.parquet", False, embeddings_out=tmp_path / "emb.parquet")
    assert rated.texts_run == 0 and not rated.plan.shards  # every rating from the cache
    assert rated.embedded == 6 and session.report.n_texts == 0 and session.report.n_embedded == 6
    assert pq.read_table(tmp_path / "new.parquet").equals(pq.read_table(tmp_path / "old.parquet"))

    # The embedding-only pass gives what a rating pass keeps.
    fresh = rate_records(
        _session(tmp_path / "fresh", tiny_model, settings),
        records,
        tmp_path / "fresh.parquet",
        False,
        embeddings_out=tmp_path / "fresh-emb.parquet",
    )
    (ids, filled), (fresh_ids, kept) = _stored(rated.embeddings), _stored(fresh.embeddings)
    assert ids == fresh_ids
    np.testing.assert_allclose(filled, kept, rtol=0, atol=2e-3 * np.abs(kept).max())

    again = rate_records(session, records, tmp_path / "new.parquet", False, embeddings_out=tmp_path / "emb.parquet")
    assert again.texts_run == 0 and again.embedded == 0  # nothing left to embed


def test_an_interrupted_run_resumes_without_duplicate_embeddings(tmp_path, tiny_model, settings, records):
    session = _session(tmp_path / "shards", tiny_model, settings)
    out, embeddings = tmp_path / "ratings.parquet", tmp_path / "emb.parquet"

    def dies_on_the_second_shard(shard, index, n_shards):
        if index == 1:
            raise KeyboardInterrupt
        return session.rate_planned(shard, index, n_shards, False)

    with pytest.raises(KeyboardInterrupt):
        rate_records(session, records, out, False, dies_on_the_second_shard, embeddings_out=embeddings)
    assert len(session.embeddings.done_ids()) == 2 and not embeddings.exists()

    # A crash between a shard's embeddings and its ratings: the shard is rated again, its embeddings rewritten.
    shard_files = sorted(session.cache.folder.glob("*.parquet"))
    shard_files[0].unlink()
    rated = rate_records(session, records, out, False, embeddings_out=embeddings)
    assert rated.texts_run == 12 and rated.embedded == 0  # all three shards rated (with embeddings) now
    ids, _ = _stored(embeddings)
    assert ids == [e.id for e in tiny_examples()]  # each example once, in the file's order
    assert len(list(session.embeddings.folder.glob("*.parquet"))) == 3
    assert pq.read_table(out).num_rows == 12


def test_a_dedicated_encoder_mean_pools_and_caches_its_shards(tmp_path, tiny_model):
    from selectit.rating.encoder import SentenceEncoder, embed_examples, encoder_text

    encoder = SentenceEncoder(str(tiny_model))
    examples = tiny_examples()
    cache = embed_examples(encoder, [examples[:4], examples[4:]], tmp_path / "cache")
    assert cache.done_ids() == {e.id for e in examples}
    cache.collect_into([e.id for e in examples], tmp_path / "emb.parquet", cache.about())
    ids, matrix = _stored(tmp_path / "emb.parquet")
    assert ids == [e.id for e in examples]

    text = encoder_text(examples[2])
    tokens = encoder.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        expected = encoder.model(**tokens).last_hidden_state[0].mean(dim=0).numpy()
    np.testing.assert_allclose(matrix[2], expected, rtol=0, atol=2e-3 * np.abs(expected).max())
    about = read_embeddings_metadata(tmp_path / "emb.parquet")
    assert about["source"] == "encoder" and about["pooling"] == "mean" and about["dim"] == 64

    written = sorted(cache.folder.glob("*.parquet"))
    embed_examples(encoder, [examples], tmp_path / "cache")  # all cached: nothing run or written
    assert sorted(cache.folder.glob("*.parquet")) == written
