"""The engine: Ray and local give the same results, shards are cached and resumed, a failing shard is
retried, workers never train, and bad input fails early with a clear message.

The Ray tests share one local Ray instance (two CPUs), started once for the module and shut down at
the end. Both sides run torch with one thread, so results agree bit for bit.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
from pathlib import Path

import pytest
import torch

from advxai import engine as engines
from advxai.attacks import adversarial_set
from advxai.engine import AttackFactory, LocalEngine, ShardFailed, map_attack
from advxai.engine.base import describe_index
from advxai.interpreters.mask import mask_maps
from advxai.runtime import WorkerForbidden, cache_dir, code_digest, model_digest, refuse_in_worker, worker_mode

from .helpers import tiny_classifier


# --------------------------------------------------------------------------- tasks the tests send


class Recorded:
    """Wraps a task: writes one file per computed shard (named by its first image id) into ``folder``,
    so the test counts shard builds across processes; raises once, or always, for chosen shards."""

    def __init__(self, inner, folder, fail_once=(), fail_always=()):
        self.inner, self.folder = inner, str(folder)
        self.fail_once, self.fail_always = set(fail_once), set(fail_always)

    def __call__(self, shard, **objects):
        first = int(shard["id"][0])
        if first in self.fail_always:
            raise RuntimeError(f"shard starting at {first} always fails")
        marker = Path(self.folder) / f"failed-{first}"
        if first in self.fail_once and not marker.exists():
            marker.touch()
            raise RuntimeError(f"shard starting at {first} fails once")
        out = self.inner(shard, **objects)
        (Path(self.folder) / f"built-{first}-{os.getpid()}-{len(list(Path(self.folder).iterdir()))}").touch()
        return out


class Logits:
    """A small deterministic task: the model's logits and one PGD step's image (uses the model)."""

    def __call__(self, shard, model):
        x = shard["x"].clone().requires_grad_(True)
        logits = model(x)
        grad, = torch.autograd.grad(logits.logsumexp(1).sum(), x)
        return {"logits": logits.detach(), "step": (x + 0.01 * grad.sign()).clamp(0, 1).detach(), "id": shard["id"]}


class TrainsAModel:
    """A task that (wrongly) asks for a model that is not trained yet (in an empty cache)."""

    def __init__(self, cache):
        self.cache = str(cache)

    def __call__(self, shard):
        from advxai.models import get_model

        before = os.environ.get("ADVXAI_CACHE")
        os.environ["ADVXAI_CACHE"] = self.cache
        try:
            get_model("digits_vgg", device="cpu", train_budget="smoke")
        finally:
            os.environ["ADVXAI_CACHE"] = before or ""
        return {"id": shard["id"]}


def builds(folder: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in folder.glob("built-*"))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # Test tasks live in this module, which workers cannot import: send them by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers run one thread per task: the same arithmetic on both sides
    yield
    torch.set_num_threads(before)


@pytest.fixture
def ray_engine(ray_cluster, one_thread):
    return engines.get_engine("ray", shard_size=3, num_gpus_per_task=0, retries=1)


@pytest.fixture(scope="module")
def shapes():
    from advxai.data import get_dataset

    data = get_dataset("shapes", split="test", n=12, use_cache=False)
    return data.batch(torch.arange(12))


def _clear(kind: str) -> None:
    shutil.rmtree(cache_dir() / kind, ignore_errors=True)


def _same(a, b) -> None:
    for field in ("x_adv", "success", "pred", "confidence", "y", "target", "linf", "l2", "l0"):
        va, vb = getattr(a, field), getattr(b, field)
        assert (va is None) == (vb is None), field
        if va is not None:
            assert torch.equal(va, vb), field
    assert sorted(a.extras) == sorted(b.extras)
    for k in a.extras:
        assert torch.equal(a.extras[k], b.extras[k]), k


# --------------------------------------------------------------------------- same results on Ray


def test_pgd_set_on_ray_equals_local(ray_engine):
    kw = dict(train_budget="smoke", device="cpu", eps=0.1, steps=3, shard_size=3)
    index = [5, 1, 7, 3, 9, 2, 8]  # 3 shards, the last one short
    _clear("adversarial")
    local = adversarial_set("pgd", "digits_cnn", "digits", index, engine=LocalEngine(), **kw)
    _clear("adversarial")  # so the Ray run computes every shard instead of loading the local ones
    remote = adversarial_set("pgd", "digits_cnn", "digits", index, engine=ray_engine, **kw)
    assert ray_engine.last_run.computed == 3 and ray_engine.last_run.cached == 0
    _same(local, remote)
    from advxai.data import get_dataset

    assert remote.y.tolist() == get_dataset("digits", "test").labels[index].tolist()  # in the order asked for
    assert torch.all(remote.linf <= 0.1 + 1e-6)


def test_adv2_cam_on_ray_equals_local(ray_engine, shapes):
    model = tiny_classifier(in_channels=3, size=64, num_classes=20, seed=1)
    x = shapes.x[:6]
    with torch.no_grad():
        y = model(x).argmax(1)
    target = (y + 1) % 20
    factory = AttackFactory("adv2", {"interpreter": "cam", "budget": "smoke", "targeted": True})
    args = dict(key={"name": "adv2-cam-test"}, shard_size=2, cache=False)
    local = map_attack(factory, model, x, y, target, engine=LocalEngine(), **args)
    remote = map_attack(factory, model, x, y, target, engine=ray_engine, **args)
    assert ray_engine.last_run.computed == 3
    _same(local, remote)
    assert not torch.equal(remote.x_adv, x) and remote.target.tolist() == target.tolist()


def test_mask_shard_on_ray_equals_local(ray_engine, shapes):
    model = tiny_classifier(in_channels=3, size=64, num_classes=20, seed=2)
    x, target = shapes.x[:2], torch.tensor([3, 4])
    local = mask_maps(model, x, target, iterations=12, engine=LocalEngine(), cache=False)
    remote = mask_maps(model, x, target, iterations=12, engine=ray_engine, shard_size=2, cache=False)
    assert torch.equal(local.maps, remote.maps) and torch.equal(local.extras["loss"], remote.extras["loss"])
    from advxai.interpreters.mask import Mask

    direct = Mask(model, iterations=12).explain(x, target)  # one local shard: what the interpreter computes
    assert torch.equal(direct.maps, local.maps)


# --------------------------------------------------------------------------- retries and resuming


@pytest.mark.parametrize("where", ["local", "ray"])
def test_a_shard_that_fails_once_is_retried(where, request, tmp_path, one_thread):
    eng = LocalEngine(shard_size=3, retries=1) if where == "local" else request.getfixturevalue("ray_engine")
    model = tiny_classifier(in_channels=1, size=16, seed=3)
    x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    inputs = {"x": x, "id": torch.arange(8)}
    clean = eng.map(Logits(), inputs, key={"name": "logits"}, objects={"model": model}, shard_size=3, cache=False)
    # the local engine warns on the driver; Ray retries the task on the cluster
    with pytest.warns(RuntimeWarning, match="retrying") if where == "local" else contextlib.nullcontext():
        flaky = eng.map(Recorded(Logits(), tmp_path, fail_once={3}), inputs, key={"name": "logits"},
                        objects={"model": model}, shard_size=3, cache=False)
    assert (tmp_path / "failed-3").exists()  # the shard did fail once ...
    assert builds(tmp_path) == [0, 3, 6]  # ... and was computed again, once
    for k in clean:
        assert torch.equal(clean[k], flaky[k]), k


@pytest.mark.parametrize("where", ["local", "ray"])
def test_a_rerun_computes_only_the_missing_shards(where, request, tmp_path, tmp_cache, one_thread):
    eng = LocalEngine(shard_size=2, retries=0) if where == "local" else request.getfixturevalue("ray_engine")
    model = tiny_classifier(in_channels=1, size=16, seed=4)
    x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    inputs = {"x": x, "id": torch.arange(8)}
    first = tmp_path / "first"
    first.mkdir()
    with pytest.raises(ShardFailed, match=r"shard 3 of 4 \(image indices 4..5\).*always fails"):
        eng.map(Recorded(Logits(), first, fail_always={4}), inputs, key={"name": "resume"},
                objects={"model": model}, shard_size=2)
    done = builds(first)
    assert 4 not in done
    if where == "local":
        assert done == [0, 2]  # in order, up to the failure
    second = tmp_path / "second"
    second.mkdir()
    out = eng.map(Recorded(Logits(), second), inputs, key={"name": "resume"}, objects={"model": model}, shard_size=2)
    rebuilt = builds(second)
    assert not set(rebuilt) & set(done), "a shard that had finished was computed again"
    assert sorted(set(rebuilt) | set(done)) == [0, 2, 4, 6]
    assert eng.last_run.cached == len(done) and eng.last_run.computed == len(rebuilt)
    assert out["id"].tolist() == list(range(8))
    third = tmp_path / "third"
    third.mkdir()
    again = eng.map(Recorded(Logits(), third), inputs, key={"name": "resume"}, objects={"model": model}, shard_size=2)
    assert builds(third) == [] and eng.last_run.cached == 4
    assert torch.equal(again["step"], out["step"])


def test_the_cache_key_follows_weights_shard_indices_and_inputs(tmp_path, tmp_cache, one_thread):
    eng = LocalEngine(shard_size=4)
    model = tiny_classifier(in_channels=1, size=16, seed=5)
    x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    run = lambda m, inputs, **kw: eng.map(Logits(), inputs, key={"name": "k", "model": model_digest(m)},
                                          objects={"model": m}, **kw)
    run(model, {"x": x, "id": torch.arange(8)})
    assert eng.last_run.computed == 2
    run(model, {"x": x, "id": torch.arange(8)}, shard_size=2)  # other shards: other entries
    assert eng.last_run.computed == 4
    run(model, {"x": x.clone(), "id": torch.arange(8)})  # the same values: the same entries
    assert eng.last_run.cached == 2
    x2 = x.clone()
    x2[5, 0, 0, 0] = 1 - x2[5, 0, 0, 0]  # one pixel of image 5: only its shard is computed again
    run(model, {"x": x2, "id": torch.arange(8)})
    assert (eng.last_run.cached, eng.last_run.computed) == (1, 1)
    with torch.no_grad():
        model.net.head.fc.weight[0, 0] += 1  # a retrained model
    run(model, {"x": x, "id": torch.arange(8)})
    assert eng.last_run.computed == 2


def test_adversarial_set_is_keyed_by_the_weights_and_cut_into_shards(monkeypatch, tmp_cache):
    from advxai import models
    from advxai.attacks import PGD

    kw = dict(train_budget="smoke", device="cpu", eps=0.1, steps=2)
    whole = adversarial_set("pgd", "digits_cnn", "digits", [0, 1, 2, 3], **kw)
    sharded = adversarial_set("pgd", "digits_cnn", "digits", [0, 1, 2, 3], shard_size=2, **kw)
    assert len(list((cache_dir() / "adversarial").glob("*.pt"))) == 3  # one shard, then two
    # without a random start the shards compute what the whole set does
    plain = adversarial_set("pgd", "digits_cnn", "digits", [0, 1, 2, 3], random_start=False, **kw)
    plain2 = adversarial_set("pgd", "digits_cnn", "digits", [0, 1, 2, 3], random_start=False, shard_size=1, **kw)
    assert torch.allclose(plain.x_adv, plain2.x_adv, atol=1e-6)
    assert whole.y.tolist() == sharded.y.tolist()
    # a model whose weights changed (a retrain, a fix) is attacked again, not served stale images
    real = models.get_model
    calls = []

    def retrained(*args, **kwargs):
        net = real(*args, **kwargs)
        with torch.no_grad():
            net.net.head.fc.bias += 0.5
        return net

    monkeypatch.setattr(models, "get_model", retrained)
    monkeypatch.setattr(PGD, "perturb", lambda self, x, y, t: calls.append(len(x)) or x.clone())
    adversarial_set("pgd", "digits_cnn", "digits", [0, 1, 2, 3], **kw)
    assert calls == [4]


def test_per_image_settings_follow_their_images(tmp_cache):
    """A per-image step mask is cut with the images: zero for some images keeps them unchanged."""
    mask = torch.ones(4, 1, 28, 28)
    mask[1] = 0
    mask[2] = 0
    kw = dict(train_budget="smoke", device="cpu", eps=0.1, steps=2, random_start=False)
    with pytest.warns(UserWarning, match="leaves no pixel"):
        res = adversarial_set("pgd", "digits_cnn", "digits", [0, 1, 2, 3], step_mask=mask, shard_size=3, **kw)
    assert res.linf[1] == 0 and res.linf[2] == 0 and res.linf[0] > 0 and res.linf[3] > 0


# --------------------------------------------------------------------------- workers never train or download


def test_a_worker_asked_to_train_raises(ray_engine, tmp_cache):
    with pytest.raises(WorkerForbidden, match=r"shard 1 of 1 .*worker was asked to build the cache entry"):
        ray_engine.map(TrainsAModel(tmp_cache), {"id": torch.arange(2)}, key={"name": "train"}, cache=False)
    assert not list(tmp_cache.rglob("digits_vgg-*.pt"))


def test_worker_mode_guards_training_and_downloads(tmp_path, monkeypatch):
    from advxai.models.torchvision_models import _state_dict
    from advxai.runtime import cached

    monkeypatch.setenv("ADVXAI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    refuse_in_worker("anything")  # on the driver: nothing happens
    with worker_mode():
        with pytest.raises(WorkerForbidden, match="build the cache entry models/"):
            cached("models", {"name": "m", "v": 1}, lambda: {"w": torch.zeros(1)})
        with pytest.raises(WorkerForbidden, match="download torchvision's resnet50 weights"):
            _state_dict("resnet50", "ResNet50_Weights", "imagenet")
        with pytest.raises(WorkerForbidden, match="train"):
            from advxai.models import get_model

            get_model("digits_vgg", device="cpu", train_budget="smoke")
    assert not os.environ.get("ADVXAI_WORKER")
    assert cached("models", {"name": "m", "v": 1}, lambda: {"w": torch.zeros(1)})["w"].shape == (1,)


def test_a_local_shard_error_keeps_its_type_and_names_the_shard(tmp_cache):
    eng = LocalEngine(shard_size=2, retries=3)
    model = tiny_classifier(in_channels=1, size=16)
    with pytest.raises(ValueError, match=r"shard 2 of 2 \(image indices 12..13\).*labels must be"):
        map_attack(AttackFactory("pgd", {"steps": 1}), model, torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 2, 99]),
                   key={"name": "bad"}, index=[10, 11, 12, 13], engine=eng)


# --------------------------------------------------------------------------- bad input


def test_unknown_engine_and_bad_settings():
    with pytest.raises(ValueError, match="unknown engine 'spark'; valid: local, ray"):
        engines.get_engine("spark")
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ValueError, match=r"shard_size must be an integer >= 1"):
            engines.get_engine("local", shard_size=bad)
    with pytest.raises(ValueError, match=r"retries must be an integer in \[0, 100\]"):
        engines.get_engine("local", retries=-1)
    from advxai.engine.cluster import check_gpus

    for bad in (-0.5, 1.5, True):
        with pytest.raises(ValueError, match="num_gpus_per_task"):
            check_gpus(bad)
    assert check_gpus(0.25) == 0.25 and check_gpus(2) == 2.0
    with pytest.raises(TypeError, match="key must be a dict"):
        LocalEngine().map(Logits(), {"x": torch.zeros(1, 1, 4, 4)}, key="x")


def test_an_empty_selection_says_so():
    from advxai.errors import EmptySelection

    with pytest.raises(EmptySelection, match="no images"):
        LocalEngine().map(Logits(), {"x": torch.zeros(0, 1, 4, 4)}, key={"name": "empty"})


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'advxai\[cluster\]'"):
        engines.get_engine("ray")
    with pytest.raises(ImportError, match=r"advxai\[cluster\]"):
        engines.preflight("ray")
    engines.preflight("local")  # the local engine needs nothing


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_address_fails_before_ray_tries(monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # the module's instance would be reused

    def no_init(*_a, **_k):
        raise AssertionError("ray.init was called for an address nothing listens at (it retries for minutes)")

    monkeypatch.setattr(ray, "init", no_init)
    address = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(engines.ClusterUnavailable, match=rf"no Ray cluster answers at {address}.*ray start --head"):
        engines.get_engine("ray", address=address)
    with pytest.raises(engines.ClusterUnavailable, match="ray start --head"):
        engines.preflight("ray", address=address)
    with pytest.raises(ValueError, match="must be 'host:port'"):
        engines.get_engine("ray", address="head-node")


# --------------------------------------------------------------------------- digests


def test_model_digest_follows_the_weights():
    a, b = tiny_classifier(seed=0), tiny_classifier(seed=0)
    assert model_digest(a) == model_digest(b) == model_digest(a)
    with torch.no_grad():
        a.net.head.fc.weight[0, 0] += 1e-3  # in place: the cached digest must notice
    assert model_digest(a) != model_digest(b)
    a.load_state_dict(b.state_dict())
    assert model_digest(a) == model_digest(b)
    assert model_digest(tiny_classifier(seed=1)) != model_digest(b)


def test_code_digest_follows_what_the_attack_holds():
    model = tiny_classifier(in_channels=3, size=32, num_classes=5)
    pgd = AttackFactory("pgd", {})(model)
    cam = AttackFactory("adv2", {"interpreter": "cam", "budget": "smoke"})(model)
    grad = AttackFactory("adv2", {"interpreter": "grad", "budget": "smoke"})(model)
    assert code_digest(pgd) == code_digest(AttackFactory("pgd", {"eps": 0.1})(model))  # settings are not code
    assert len({code_digest(pgd), code_digest(cam), code_digest(grad)}) == 3  # CAM's module vs the gradient's


def test_describe_index():
    assert describe_index([4, 5, 6]) == "4..6" and describe_index([7]) == "7"
    assert describe_index([1, 5, 2]) == "1, 5, 2"


# --------------------------------------------------------------------------- the process-wide engine


def test_configure_sets_the_current_engine():
    try:
        eng = engines.configure("local", shard_size=5)
        assert engines.current() is eng and eng.shard_size == 5
    finally:
        engines.configure("local")
    assert engines.current().shard_size is None  # the default: one shard per job


# --------------------------------------------------------------------------- the command line and the runner


def _fake_study(tmp_path, monkeypatch, declares: bool) -> Path:
    from advxai import runner

    root = tmp_path / "study"
    (root / "chapters").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\n")
    engine_lines = 'engine = "local"\nray_address = "auto"\nshard_size = None\n' if declares else ""
    (root / "chapters" / "ch01_demo.py").write_text(
        f'# %% tags=["parameters"]\n{engine_lines}n_images = 4\n\n# %%\nprint(n_images)\n')
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "ch01_demo.yaml").write_text("smoke: {n_images: 2}\nquick: {}\npaper: {}\n")
    monkeypatch.setattr(runner, "PROFILE_DIR", profiles)
    return root


def test_engine_and_address_reach_the_chapters_that_declare_them(tmp_path, monkeypatch):
    from advxai import runner

    root = _fake_study(tmp_path, monkeypatch, declares=True)
    params = runner.resolve_parameters("ch01_demo", "smoke", {}, None, root, engine="ray", address="head:6379")
    assert params["engine"] == "ray" and params["ray_address"] == "head:6379" and params["n_images"] == 2
    assert "engine" not in runner.resolve_parameters("ch01_demo", "smoke", {}, None, root)
    with pytest.raises(runner.ChapterError, match="unknown engine 'spark'; valid: local, ray"):
        runner.resolve_parameters("ch01_demo", "smoke", {"engine": "spark"}, None, root)
    params = runner.resolve_parameters("ch01_demo", "smoke", {"shard_size": 8}, None, root)
    assert params["shard_size"] == 8
    with pytest.raises(runner.ChapterError, match=r"shard_size must be an integer >= 1"):
        runner.resolve_parameters("ch01_demo", "smoke", {"shard_size": 0}, None, root)
    root = _fake_study(tmp_path / "other", monkeypatch, declares=False)
    assert "engine" not in runner.resolve_parameters("ch01_demo", "smoke", {}, None, root, engine="ray")


def test_the_command_line_checks_the_engine_first(monkeypatch, capsys):
    from advxai.cli import main

    assert main(["run", "ch00", "--engine", "spark"]) == 2
    assert "unknown engine 'spark'; valid: local, ray" in capsys.readouterr().err
    assert main(["run", "ch00", "--address", "head:6379"]) == 2
    assert "use it with --engine ray" in capsys.readouterr().err
    address = f"127.0.0.1:{_closed_port()}"
    pytest.importorskip("ray")
    assert main(["run", "all", "--engine", "ray", "--address", address]) == 2
    assert f"no Ray cluster answers at {address}" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["book", "--engine", "ray"]) == 2
    assert "pip install 'advxai[cluster]'" in capsys.readouterr().err


def test_chapter_order_when_chapters_run_at_once():
    from advxai.runner import chapter_dependencies, list_chapters

    chapters = list_chapters()
    deps = chapter_dependencies(chapters)
    by = {c.split("_")[0]: c for c in chapters}
    assert deps[by["ch00"]] == set()
    assert deps[by["ch01"]] == {by["ch00"]} and deps[by["ch05"]] == {by["ch00"]}
    assert deps[by["ch04"]] == {by["ch00"], by["ch03"]}
    assert deps[by["ch06"]] == set(chapters) - {by["ch06"]}
    assert chapter_dependencies([by["ch04"], by["ch06"]]) == {by["ch04"]: set(), by["ch06"]: {by["ch04"]}}
    assert chapter_dependencies(["ch09_new", "ch02_x", "ch00_y"])["ch09_new"] == {"ch02_x", "ch00_y"}


def test_run_chapters_waits_for_prerequisites_and_skips_after_a_failure(monkeypatch):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from advxai import runner

    events, lock = [], threading.Lock()

    def fake_run(kwargs):
        ch = kwargs["chapter"]
        with lock:
            events.append(("start", ch))
        if ch.startswith("ch03"):
            raise RuntimeError("ch03 broke")
        with lock:
            events.append(("end", ch))
        return runner.RunResult(ch, Path(f"{ch}.ipynb"), Path(f"{ch}.metrics.json"), 0.0, {})

    monkeypatch.setattr(runner, "_run_chapter_in_process", fake_run)
    chapters = ["ch00_a", "ch01_b", "ch03_c", "ch04_d", "ch05_e", "ch06_f"]
    lines = []
    results = runner.run_chapters(chapters, executor=ThreadPoolExecutor(4), log=lines.append, profile="smoke")
    assert events.index(("end", "ch00_a")) < min(events.index(("start", c)) for c in ("ch01_b", "ch03_c", "ch05_e"))
    assert ("start", "ch04_d") not in events and ("start", "ch06_f") not in events
    assert isinstance(results["ch03_c"], RuntimeError) and "builds on ch03_c" in str(results["ch04_d"])
    assert isinstance(results["ch01_b"], runner.RunResult) and isinstance(results["ch05_e"], runner.RunResult)
    assert any("ch03_c failed" in line for line in lines)


def test_chapters_side_by_side_share_the_cores_and_respect_jobs(monkeypatch):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from advxai import runner

    chapters = ["ch00_a", "ch01_b", "ch02_c", "ch03_d", "ch04_e", "ch05_f", "ch06_g"]
    # chapter 0 precedes every chapter and chapter 6 follows every one: they never share the machine
    assert [c for c in chapters if runner.runs_alone(c, chapters)] == ["ch00_a", "ch06_g"]
    assert runner.runs_alone("ch03_d", ["ch03_d", "ch04_e"]) and not runner.runs_alone("ch03_d", chapters)

    lock, running, peak, threads = threading.Lock(), set(), [0], {}

    def fake_run(kwargs):
        ch = kwargs["chapter"]
        with lock:
            running.add(ch)
            peak[0] = max(peak[0], len(running))
            threads[ch] = kwargs["threads"]
        threading.Event().wait(0.02)
        with lock:
            running.discard(ch)
        return runner.RunResult(ch, Path(f"{ch}.ipynb"), Path(f"{ch}.metrics.json"), 0.0, {})

    monkeypatch.setattr(runner, "_run_chapter_in_process", fake_run)
    results = runner.run_chapters(chapters, executor=ThreadPoolExecutor(8), jobs=2, cores=4, log=lambda _: None)
    assert all(isinstance(r, runner.RunResult) for r in results.values())
    assert peak[0] == 2  # five chapters could run at once after chapter 0; two did
    assert threads == {"ch00_a": 4, "ch06_g": 4, **{c: 2 for c in chapters[1:-1]}}
    with pytest.raises(runner.ChapterError, match="jobs must be a positive integer"):
        runner.run_chapters(chapters, executor=ThreadPoolExecutor(1), jobs=0)


def test_models_are_trained_before_chapters_run_side_by_side(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from advxai import runner

    chapters = runner.list_chapters()
    pairs = runner.models_to_train(chapters, "smoke")
    names = [n for n, _ in pairs]
    assert set(names) >= {"mnist_cnn", "mnist_vgg", "shapes_resnet", "shapes_densenet"}
    assert {b for _, b in pairs} == {"smoke"}
    assert names[0].split("_")[0] != names[1].split("_")[0]  # two data sets' models first, side by side
    trained = []
    monkeypatch.setattr(runner, "_train_in_process", lambda name, budget, device, threads: trained.append(
        (name, budget, threads)))
    runner.train_models(pairs, jobs=2, cores=4, executor=ThreadPoolExecutor(2), log=lambda _: None)
    assert sorted(trained) == sorted((n, b, 2) for n, b in pairs)

    def broken(name, *_):
        raise RuntimeError(f"{name} diverged")

    monkeypatch.setattr(runner, "_train_in_process", broken)
    with pytest.raises(RuntimeError, match="diverged"):
        runner.train_models(pairs[:1], jobs=2, cores=2, executor=ThreadPoolExecutor(1), log=lambda _: None)


def test_the_ray_engine_defaults(ray_cluster):
    eng = engines.get_engine("ray")  # joins the module's instance
    assert eng.shard_size == engines.cluster.DEFAULT_SHARD_SIZE == 16
    assert eng.gpus_per_task() == 0.0  # no GPU in this instance: tasks ask for a CPU


def test_install_files_carry_the_cluster_extra():
    root = Path(__file__).resolve().parents[1]
    assert 'cluster = ["ray[default]==' in (root / "pyproject.toml").read_text()
    assert '".[book,test,cluster]"' in (root / "Makefile").read_text()
    assert "-e .[book,test,cluster]" in (root / "environment.yml").read_text()
