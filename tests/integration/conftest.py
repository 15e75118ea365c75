"""Fixtures for the integration tier."""

from __future__ import annotations

import pytest


@pytest.fixture
def hf_offline(monkeypatch):
    """The Hugging Face hub and its datasets are never asked over the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture
def isolated_caches(tmp_path, monkeypatch, hf_offline):
    """The file-digest memo and any model conversion go to tmp_path; the hub is never asked."""
    monkeypatch.setenv("SELECTIT_CACHE", str(tmp_path / "selectit-cache"))
