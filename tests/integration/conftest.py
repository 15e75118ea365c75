"""Fixtures for the integration tier."""

from __future__ import annotations

import pytest


@pytest.fixture
def isolated_caches(tmp_path, monkeypatch):
    """The file-digest memo and any model conversion go to tmp_path; the hub is never asked."""
    monkeypatch.setenv("SELECTIT_CACHE", str(tmp_path / "selectit-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
