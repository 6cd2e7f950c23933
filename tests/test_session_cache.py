"""The test session runs against its own cache (conftest): nothing is read from or written into the
user's cache, and subprocesses (chapter runs) inherit the session's cache."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import torch

from advxai import runtime

from .conftest import written_into_user_cache


def test_the_cache_is_the_sessions_own_folder(session_cache):
    folder, user = session_cache["folder"], session_cache["user"]
    assert Path(os.environ["ADVXAI_CACHE"]) == folder != user
    assert runtime.cache_dir() == folder and folder.name.startswith("advxai-test-cache-")
    assert user not in folder.parents and folder not in user.parents
    # a subprocess (how the tests run chapters) caches there too
    out = subprocess.run([sys.executable, "-c", "from advxai.runtime import cache_dir; print(cache_dir())"],
                         capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == folder


def test_an_entry_built_in_the_session_lands_in_the_session_cache_only(session_cache):
    folder, user = session_cache["folder"], session_cache["user"]
    spec = {"name": "session-probe", "id": uuid.uuid4().hex}
    value = runtime.cached("probe", spec, lambda: {"x": torch.arange(3)})
    assert torch.equal(value["x"], torch.arange(3))
    path = runtime.cache_path("probe", spec)
    assert path.is_file() and folder in path.parents
    assert not (user / path.relative_to(folder)).exists()
    assert written_into_user_cache() == []  # what conftest checks again when the session ends
