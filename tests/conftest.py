"""Shared fixtures: one private cache for the whole test session, an isolated cache per test that asks
for one, and tiny models.

The session's cache is a fresh temporary folder, set as ``$ADVXAI_CACHE`` before any test runs (so
before ``advxai`` caches anything, and for every subprocess a test starts). The suite therefore
never reads models trained elsewhere (whose last bits depend on the thread count they were trained
with) and never writes into the user's cache; the smoke models it needs are trained once per
session. The user's cache is checked at the end of the session: any entry the suite created there
fails the session.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import torch

_SESSION: dict = {}


def _user_cache() -> Path:
    return Path(os.environ.get("ADVXAI_CACHE") or Path.home() / ".cache" / "advxai")


def pytest_configure(config):
    if "folder" in _SESSION:  # configured once per process
        return
    _SESSION["user"] = _user_cache()
    _SESSION["previous"] = os.environ.get("ADVXAI_CACHE")
    _SESSION["started"] = time.time()
    _SESSION["folder"] = Path(tempfile.mkdtemp(prefix="advxai-test-cache-"))
    os.environ["ADVXAI_CACHE"] = str(_SESSION["folder"])
    # the tests expect the models' own input sizes; the ones about the setting set it themselves
    os.environ.pop("ADVXAI_IMAGE_SIZE", None)


def pytest_unconfigure(config):
    folder = _SESSION.pop("folder", None)
    if folder is None:
        return
    if _SESSION["previous"] is None:
        os.environ.pop("ADVXAI_CACHE", None)
    else:
        os.environ["ADVXAI_CACHE"] = _SESSION["previous"]
    shutil.rmtree(folder, ignore_errors=True)


def written_into_user_cache() -> list[str]:
    """Entries of the session cache that also appeared in the user's cache since the session started."""
    folder, user, started = _SESSION["folder"], _SESSION["user"], _SESSION["started"]
    found = []
    for path in folder.rglob("*"):
        twin = user / path.relative_to(folder)
        if path.is_file() and twin.is_file() and twin.stat().st_mtime >= started:
            found.append(str(path.relative_to(folder)))
    return found


@pytest.fixture(scope="session")
def session_cache() -> dict:
    """``{"folder": the session's cache, "user": the user's cache it replaces}``."""
    return {"folder": _SESSION["folder"], "user": _SESSION["user"]}


@pytest.fixture(scope="session", autouse=True)
def _user_cache_untouched():
    yield
    leaked = written_into_user_cache()
    if leaked:
        pytest.fail(f"the test session wrote into the user's cache {_SESSION['user']}: {leaked[:5]}")


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
