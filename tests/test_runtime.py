import os
import subprocess
import sys
import textwrap

import pytest
import torch

from advxai import runtime


def test_resolve_device():
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert runtime.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="valid"):
        runtime.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            runtime.resolve_device("cuda:0")


def test_seed_everything_repeats_and_checks():
    runtime.seed_everything(3)
    a = torch.rand(5)
    runtime.seed_everything(3)
    assert torch.equal(a, torch.rand(5))
    with pytest.raises(ValueError):
        runtime.seed_everything(-1)


def test_cached_builds_once_and_reloads(tmp_cache):
    calls = []

    def build():
        calls.append(1)
        return {"w": torch.arange(4.0)}

    spec = {"name": "thing", "n": 1}
    first = runtime.cached("unit", spec, build)
    second = runtime.cached("unit", spec, build)
    assert len(calls) == 1 and torch.equal(first["w"], second["w"])
    other = runtime.cached("unit", {"name": "thing", "n": 2}, build)
    assert len(calls) == 2 and torch.equal(other["w"], first["w"])


def test_corrupted_entry_is_rebuilt_not_loaded(tmp_cache):
    spec = {"name": "thing"}
    runtime.cached("unit", spec, lambda: torch.ones(3))
    path = runtime.cache_path("unit", spec)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="damaged"):
        value = runtime.cached("unit", spec, lambda: torch.zeros(3))
    assert torch.equal(value, torch.zeros(3))
    assert torch.equal(runtime.cached("unit", spec, lambda: torch.ones(3)), torch.zeros(3))


def test_truncated_entry_is_detected(tmp_cache):
    spec = {"name": "thing"}
    runtime.cached("unit", spec, lambda: torch.ones(1000))
    path = runtime.cache_path("unit", spec)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(runtime.CacheCorrupted):
        runtime.load_checkpoint(path)


def test_atomic_save_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.pt"
    with pytest.raises(Exception):
        runtime.atomic_save({"f": lambda: 0}, target)  # lambdas cannot be pickled
    assert list(tmp_path.iterdir()) == []


def test_checkpoints_refuse_pickled_objects(tmp_path):
    import argparse

    path = tmp_path / "evil.pt"
    torch.save({"obj": argparse.Namespace(a=1)}, path)  # an arbitrary object, not weights
    (tmp_path / "evil.pt.sha256").write_text(runtime._sha256(path))
    with pytest.raises(runtime.CacheCorrupted, match="unreadable"):
        runtime.load_checkpoint(path)


def test_network_guard_blocks_remote_and_allows_loopback():
    code = textwrap.dedent("""
        import socket
        from advxai.runtime import forbid_network, NetworkForbidden
        forbid_network()
        try:
            socket.create_connection(("203.0.113.1", 80), timeout=1)
        except NetworkForbidden:
            print("blocked-connect")
        try:
            socket.getaddrinfo("example.com", 80)
        except NetworkForbidden:
            print("blocked-dns")
        srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
        c = socket.create_connection(srv.getsockname(), timeout=1); c.close(); srv.close()
        print("loopback-ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["blocked-connect", "blocked-dns", "loopback-ok"], out.stderr


def test_env_variable_turns_guard_on():
    code = "import socket, advxai\ntry:\n    socket.getaddrinfo('example.com', 80)\nexcept ConnectionError as e:\n    print(type(e).__name__)"
    env = {**os.environ, "ADVXAI_FORBID_NETWORK": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "NetworkForbidden", out.stderr


def test_embedded_data_and_models_load_offline(tmp_path):
    """What the smoke and quick profiles load (embedded data sets and models) never touches the network."""
    code = textwrap.dedent("""
        import torch
        from advxai.data import get_dataset
        from advxai.models import get_model
        for name, kw in [("digits", {}), ("photos", {}), ("shapes", {"n": 64})]:
            ds = get_dataset(name, "test", **kw)
            ds.batch(torch.arange(4))
        model = get_model("efficientnet_lite0", device="cpu")
        model(torch.rand(1, 3, 224, 224))
        get_model("digits_cnn", device="cpu", train_budget="smoke")
        print("offline-ok")
    """)
    env = {**os.environ, "ADVXAI_FORBID_NETWORK": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.stdout.strip().endswith("offline-ok"), out.stderr[-2000:]


def test_seed_everything_switches_tf32_off():
    import torch

    from advxai.accelerate import tf32_state
    from advxai.runtime import seed_everything

    seed_everything(0)
    assert tf32_state() == {"matmul": "ieee", "conv": "ieee"}
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
