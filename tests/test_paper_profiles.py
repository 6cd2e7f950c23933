"""Every chapter's ``paper`` profile runs end to end on fake data in the real folder layouts.

A user with ImageNet, CUB, CIFAR-10, AwA2 or MNIST on disk runs ``advxai run chNN --profile paper``.
No real data set or torchvision checkpoint can be downloaded here, so this test builds them as fakes
(``tests/fakes.py``: JPEGs of mixed sizes in each data set's real layout, one greyscale; random-weight
checkpoints under a temporary ``$TORCH_HOME``; ImageNet labelled with the random models' own
predictions, so its images count as correctly classified) and runs each chapter's paper profile
through the CLI, with the offline guard on and the tiny size overrides of
``tests/paper_fakes/<chapter>.yaml`` (a mapping of parameter -> value). Only sizes are overridden:
data sets, models and settings stay the paper profile's.

The torchvision models to write are the ones the chapter's resolved parameters name. The whole
fake world is built once per session, for every chapter at once.

Every run sets ``$ADVXAI_IMAGE_SIZE`` (``advxai run --image-size``; :func:`fake_image_size`): the
torchvision models take, and the fake folders give, 64-pixel images instead of 224/299 (96 for a
chapter with Inception-v3, whose minimum is 75). The code paths are the same (every map, decoder and
data set sizes itself from the model's input size; both sides are multiples of 32, so every stride
of the networks divides them), and the runs take a fifth to a tenth of the time. The fake ImageNet
is labelled by each model at each size a chapter runs it at.

Run by ``make test`` (``make paper``), not by ``make unit``: it takes minutes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from advxai import runner
from advxai.runtime import IMAGE_SIZE_ENV

pytestmark = pytest.mark.paper_fakes

FAKES = Path(__file__).resolve().parent / "paper_fakes"
CHAPTERS = sorted(p.stem for p in FAKES.glob("ch*.yaml"))
ROOT = Path(__file__).resolve().parents[1]
SMALL, INCEPTION_SIZE = 64, 96  # multiples of 32; Inception-v3 takes 75 px at least


def fake_image_size(chapter: str) -> int:
    return INCEPTION_SIZE if "inception_v3" in torchvision_models(chapter) else SMALL


def overrides(chapter: str) -> dict:
    data = yaml.safe_load((FAKES / f"{chapter}.yaml").read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{chapter}.yaml must be a mapping of parameter -> value")
    return data


def torchvision_models(chapter: str) -> set[str]:
    """The torchvision models a chapter's paper profile (with its overrides) names."""
    from advxai.models.torchvision_models import TORCHVISION

    params = {**runner.profile_parameters(chapter, "paper"), **overrides(chapter)}
    names = set()
    for value in params.values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, str) and item in TORCHVISION:
                names.add(item)
    return names


@pytest.fixture(scope="session")
def fake_world(tmp_path_factory) -> dict[str, str]:
    from .fakes import build_fake_world

    sizes: dict[str, set[int]] = {}
    for ch in CHAPTERS:
        for name in torchvision_models(ch):
            sizes.setdefault(name, set()).add(fake_image_size(ch))
    return build_fake_world(tmp_path_factory.mktemp("world"), models=sorted(sizes),
                            sizes={name: sorted(s) for name, s in sizes.items()})


def test_every_chapter_has_its_fake_overrides():
    chapters = runner.list_chapters(ROOT)
    missing = [ch for ch in chapters if not (FAKES / f"{ch}.yaml").exists()]
    assert not missing, f"no tests/paper_fakes/<chapter>.yaml for {missing}"
    for ch in CHAPTERS:  # every override is a parameter the chapter declares, of the right type
        runner.resolve_parameters(ch, "paper", overrides(ch), root=ROOT)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_paper_profile_runs_on_fakes(chapter, fake_world, tmp_path):
    out = tmp_path / "book"
    args = [sys.executable, "-m", "advxai", "run", chapter, "--profile", "paper", "--device", "cpu",
            "--output-dir", str(out)]
    for key, value in overrides(chapter).items():
        args += ["-p", f"{key}={json.dumps(value)}"]
    env = {**os.environ, **fake_world, "ADVXAI_FORBID_NETWORK": "1", "ADVXAI_ROOT": str(ROOT),
           IMAGE_SIZE_ENV: str(fake_image_size(chapter))}
    proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{chapter} paper profile on fakes failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    notebook, metrics = out / f"{chapter}.ipynb", out / f"{chapter}.metrics.json"
    assert notebook.exists() and metrics.exists()
    data = json.loads(metrics.read_text())
    assert data["run"]["profile"] == "paper" and data["run"]["image_size"] == fake_image_size(chapter)
    errors = [o for c in json.loads(notebook.read_text())["cells"] for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
