"""Shared fixtures: an isolated cache per test that asks for one, and tiny models."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """Point $ADVXAI_CACHE at an empty folder for this test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("ADVXAI_CACHE", str(folder))
    return folder


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
