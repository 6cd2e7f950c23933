"""Seconds per image of each attack and of Integrated Gradients, beside torchattacks and captum.

    python benchmarks/bench_attacks.py [--device cpu|cuda] [--models digits_cnn efficientnet_lite0]
                                       [--batch 32 4] [--repeats 2] [--ig-steps 50]
                                       [--methods fgsm pgd ig] [--random-weights] [--fast tf32] [--json out.json]

For each model, one batch of its own data (digits test images, the photographs) goes through every
attack of ``advxai.attacks`` with the chapter's kind of settings, through Integrated Gradients, and
through one learning step of the adversarial patch; torchattacks' FGSM and PGD (same eps, step,
steps, no random start) and captum's IG (same steps, Gauss-Legendre, same internal batch) run on the
same model and batch, and the table gives the ratio ours / theirs. Prints a table; nothing is
asserted (timings belong here, not in tests). Models trained here are loaded from the cache.

``--random-weights`` builds the torchvision models (``resnet50`` ...) with random weights (speed does
not depend on them); photographs are repeated to fill a batch larger than the eight there are.
``--methods`` picks a subset; ``--fast`` and ``--json`` as in ``benchmarks/speed.py``.
"""
from __future__ import annotations

import argparse

import pandas as pd
import torch

from advxai.attacks import AdversarialPatch, get_attack
from advxai.data import get_dataset
from advxai.interpreters import get_interpreter
from advxai.models import MODELS, get_model
from advxai.runtime import resolve_device, seed_everything
from speed import Rows, add_arguments, speed  # benchmarks/speed.py
from timing import synchronizer, timed  # benchmarks/timing.py

METHODS = ("fgsm", "bim", "pgd", "cw", "deepfool", "ig", "patch")


def batch_for(model, n: int, dev, image_size: int | None = None):
    data = get_dataset("digits" if model.info.dataset == "digits" else "photos", "test")
    b = data.batch(torch.arange(min(n, len(data))))
    x = b.x
    if len(x) < n:  # repeat the photographs to fill a GPU-sized batch
        x = x.repeat((n + len(x) - 1) // len(x), 1, 1, 1)[:n]
    size = image_size or model.info.input_size[-1]
    if x.shape[-1] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    x = x.to(dev)
    with torch.no_grad():
        y = model(x).argmax(1)  # attack the model's own labels, so every image is a fair start
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="*", default=["digits_cnn", "efficientnet_lite0"])
    parser.add_argument("--batch", nargs="*", type=int, default=[32, 4], help="batch size per model")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ig-steps", type=int, default=50)
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--cw-steps", type=int, default=20)
    parser.add_argument("--deepfool-steps", type=int, default=5)
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    parser.add_argument("--random-weights", action="store_true", help="torchvision models with random weights")
    parser.add_argument("--image-size", type=int, default=None, help="resize the images (a quick try on a CPU)")
    add_arguments(parser)
    args = parser.parse_args()
    import captum.attr
    import torchattacks

    seed_everything(0)
    dev = resolve_device(args.device)
    sync = synchronizer(dev)
    batches = dict(zip(args.models, args.batch + [args.batch[-1]] * len(args.models)))
    rows = []
    out = Rows(args.json, "attacks", dev, args, pgd_steps=args.pgd_steps, ig_steps=args.ig_steps,
               cw_steps=args.cw_steps, deepfool_steps=args.deepfool_steps, image_size=args.image_size)
    for name in args.models:
        random = args.random_weights and MODELS.check(name).meta.get("tier") == "real"
        model = get_model(name, device=str(dev), **({"weights": "random"} if random else {}))
        label = f"{name} (random)" if random else name
        x, y = batch_for(model, batches[name], dev, args.image_size)
        n = len(x)
        eps = 0.3 if model.info.dataset == "digits" else 2 / 255
        alpha = eps / 4
        ig_batch = 64
        ours = {
            "fgsm": lambda: get_attack("fgsm", model, eps=eps)(x, y),
            "bim": lambda: get_attack("bim", model, eps=eps, steps=args.pgd_steps)(x, y),
            "pgd": lambda: get_attack("pgd", model, eps=eps, alpha=alpha, steps=args.pgd_steps,
                                      random_start=False)(x, y),
            "cw": lambda: get_attack("cw", model, c=0.1, steps=args.cw_steps, binary_search_steps=1,
                                     abort_early=False)(x, y),
            "deepfool": lambda: get_attack("deepfool", model, steps=args.deepfool_steps)(x, y),
            "ig": lambda: get_interpreter("ig", model, steps=args.ig_steps, internal_batch_size=ig_batch)(x),
        }
        if "patch" in args.methods:
            patch = AdversarialPatch(model, target_class=int((y[0] + 1) % model.info.num_classes), size=0.1,
                                     train_batch=n, steps=1)
            ours["patch"] = lambda: patch.fit(x, steps=1)
        peers = {
            "fgsm": ("torchattacks FGSM", lambda: torchattacks.FGSM(model, eps=eps)(x, y)),
            "pgd": ("torchattacks PGD", lambda: torchattacks.PGD(model, eps=eps, alpha=alpha, steps=args.pgd_steps,
                                                               random_start=False)(x, y)),
            "ig": ("captum IG", lambda: captum.attr.IntegratedGradients(model).attribute(
                x, baselines=torch.zeros_like(x), target=y, n_steps=args.ig_steps, method="gausslegendre",
                internal_batch_size=ig_batch)),
        }
        with speed(model, args):
            for what in [m for m in METHODS if m in args.methods]:
                seconds = timed(ours[what], args.repeats, sync) / n
                row = {"model": label, "batch": n, "method": "patch (1 learning step)" if what == "patch" else what,
                       "ours s/image": seconds}
                record = {"model": label, "batch": n, "method": what, "ours_s_per_image": seconds}
                if what in peers:
                    peer_name, peer_fn = peers[what]
                    peer = timed(peer_fn, args.repeats, sync) / n
                    row.update({"peer": peer_name, "peer s/image": peer, "ours / peer": seconds / peer})
                    record.update({"peer": peer_name, "peer_s_per_image": peer, "ratio": seconds / peer})
                rows.append(row)
                out.add(record)
                print({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        del model
    out.close()
    table = pd.DataFrame(rows)
    settings = (f"device {dev}, threads {torch.get_num_threads()}, speed settings {args.fast}, "
                f"PGD/BIM {args.pgd_steps} steps, C&W {args.cw_steps} steps x 1 search, "
                f"DeepFool <= {args.deepfool_steps} steps, IG {args.ig_steps} points")
    print(settings)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
