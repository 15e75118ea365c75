"""Ingest sources: a local file, an http(s) URL (served on 127.0.0.1), a hub dataset offline."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time

import pytest
from helpers import TINY_ROWS, trickling_server

from selectit.core.errors import InputError
from selectit.core.io import file_sha256
from selectit.ingest.sources import ingest


@pytest.fixture
def served(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www for the length of one test."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_local_file_with_limit_and_hash(tiny_alpaca, tmp_path):
    result = ingest([str(tiny_alpaca)], limit=4, download_dir=tmp_path / "dl")
    assert len(result.examples) == 4 and result.n_read == len(TINY_ROWS)
    (source,) = result.sources
    assert source["sha256"] == file_sha256(tiny_alpaca) and source["bytes"] == tiny_alpaca.stat().st_size


def test_url_source_is_downloaded_and_read(served, tmp_path):
    www, base = served
    (www / "data.jsonl").write_text("\n".join(json.dumps(r) for r in TINY_ROWS))
    result = ingest([f"{base}/data.jsonl"], limit=None, download_dir=tmp_path / "dl")
    assert [e.instruction for e in result.examples] == [r["instruction"] for r in TINY_ROWS]
    assert (tmp_path / "dl" / "data.jsonl").is_file()


def test_missing_url_and_missing_file_name_the_source(served, tmp_path, monkeypatch):
    monkeypatch.setattr("selectit.ingest.sources.DOWNLOAD_ATTEMPTS", 1)
    _, base = served
    with pytest.raises(InputError, match="nothing.jsonl: download failed"):
        ingest([f"{base}/nothing.jsonl"], limit=None, download_dir=tmp_path / "dl")
    assert not list((tmp_path / "dl").glob("*"))  # no partial download left behind
    with pytest.raises(InputError, match="missing.json: no such file"):
        ingest([str(tmp_path / "missing.json")], limit=None, download_dir=tmp_path / "dl")


def test_hub_source_offline_is_a_clear_error(tmp_path, monkeypatch, hf_offline):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(InputError, match="hf:someone/absent: could not load the dataset"):
        ingest(["hf:someone/absent"], limit=None, download_dir=tmp_path / "dl")


def test_a_download_over_its_size_cap_or_deadline_stops_and_leaves_nothing(served, tmp_path, monkeypatch):
    from selectit.ingest.sources import CHUNK, DownloadLimits

    www, base = served
    (www / "big.jsonl").write_bytes(b"x" * (3 * CHUNK))
    with pytest.raises(InputError, match="big.jsonl: larger than ingest.max_download_mb"):
        ingest([f"{base}/big.jsonl"], None, tmp_path / "dl", limits=DownloadLimits(max_bytes=CHUNK, deadline_s=60))
    assert not list((tmp_path / "dl").glob("*"))
    monkeypatch.setattr("selectit.ingest.sources.time.monotonic", iter([0.0, 0.0, 100.0, 100.0, 100.0]).__next__)
    with pytest.raises(InputError, match="big.jsonl: not downloaded within ingest.download_timeout_s"):
        ingest([f"{base}/big.jsonl"], None, tmp_path / "dl", limits=DownloadLimits(max_bytes=4 * CHUNK, deadline_s=50))
    assert not list((tmp_path / "dl").glob("*"))


@pytest.mark.parametrize("url", ["http://", "http://127.0.0.1:notaport/x.jsonl"])
def test_a_malformed_url_is_one_clear_error(url, tmp_path):
    with pytest.raises(InputError, match="not a usable URL"):
        ingest([url], None, tmp_path / "dl")
    assert not list((tmp_path / "dl").glob("*"))


def test_a_trickling_server_cannot_stretch_the_download_past_its_deadline(tmp_path):
    from selectit.ingest.sources import DownloadLimits

    started = time.monotonic()
    with trickling_server() as base, pytest.raises(InputError, match="slow.jsonl: not downloaded within ingest"):
        ingest([f"{base}/slow.jsonl"], None, tmp_path / "dl", limits=DownloadLimits(max_bytes=1 << 30, deadline_s=2))
    assert time.monotonic() - started < 30  # before: never ended
    assert not list((tmp_path / "dl").glob("*"))
