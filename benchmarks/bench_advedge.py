"""Cost of the edge step masks: PGD, StAdv (and ADV² against CAM) plain, AdvEdge, AdvEdge+ and edges in the warm start only.

    python benchmarks/bench_advedge.py [--device cpu|cuda] [--models shapes_resnet digits_cnn]
                                       [--batch 16] [--steps 20] [--repeats 3] [--adv2-steps 20]

Prints seconds per image and the overhead against the unmasked attack; nothing is asserted
(timings belong here, not in tests). The edge map is computed once per batch, so its cost should
vanish against the attack's forward and backward passes; this script measures that it does. Models
trained here are loaded from the cache (trained first if missing, which is not timed).
"""
from __future__ import annotations

import argparse

import pandas as pd
import torch

from advxai.attacks import PGD, StAdv, get_attack
from advxai.attacks.edges import advedge_threshold, edge_step, sobel_magnitude
from advxai.data import get_dataset
from advxai.models import get_model
from advxai.runtime import resolve_device, seed_everything
from timing import synchronizer, timed  # benchmarks/timing.py

VARIANTS = {  # name -> (step mask factory, mask_steps as a fraction of the steps or None)
    "plain": (lambda interp: None, None),
    "advedge": (lambda interp: edge_step("advedge"), None),
    "advedge+": (lambda interp: edge_step("advedge+", advedge_threshold(interp)), None),
    "advedge+ (0.05)": (lambda interp: edge_step("advedge+", 0.05), None),
    "advedge, warm start only": (lambda interp: edge_step("advedge"), 0.25),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="*", default=["shapes_resnet", "digits_cnn"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--adv2-steps", type=int, default=20, help="ADV² (CAM) steps after 5 warm-start steps; 0 skips it")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    seed_everything(0)
    dev = resolve_device(args.device)
    sync = synchronizer(dev)

    rows = []
    for name in args.models:
        model = get_model(name, device=str(dev))
        data = get_dataset(model.info.dataset, split="test")
        b = data.batch(data.sample_indices(args.batch, seed=0))
        x, y = b.x.to(dev), b.y.to(dev)
        target = (y + 1) % model.info.num_classes
        eps = 8 / 255 if model.info.input_size[0] == 3 else 0.1
        rows.append({"model": name, "attack": "sobel edge map alone", "variant": "-",
                     "s_per_image": timed(lambda: sobel_magnitude(x), args.repeats, sync) / len(x)})
        for variant, (mask, warm_fraction) in VARIANTS.items():
            mask_steps = None if warm_fraction is None else max(1, int(warm_fraction * args.steps))
            pgd = PGD(model, eps=eps, steps=args.steps, step_mask=mask("cam"), mask_steps=mask_steps)
            rows.append({"model": name, "attack": f"PGD ({args.steps} steps)", "variant": variant,
                         "s_per_image": timed(lambda: pgd(x, y), args.repeats, sync) / len(x)})
            stadv = StAdv(model, steps=args.steps, lr=0.05, step_mask=mask("cam"), mask_steps=mask_steps)
            rows.append({"model": name, "attack": f"StAdv ({args.steps} steps)", "variant": variant,
                         "s_per_image": timed(lambda: stadv(x, y), args.repeats, sync) / len(x)})
            if args.adv2_steps and warm_fraction is None:  # ADV² runs its warm start as a separate stage
                adv2 = get_attack("adv2", model, interpreter="cam", eps=eps, alpha=1 / 255, steps=args.adv2_steps,
                                  warm_steps=5, lam=1.0, step_mask=mask("cam"))
                rows.append({"model": name, "attack": f"ADV² CAM (5 + {args.adv2_steps} steps)", "variant": variant,
                             "s_per_image": timed(lambda: adv2(x, y, target), args.repeats, sync) / len(x)})

    df = pd.DataFrame(rows)
    base = df[df.variant == "plain"].set_index(["model", "attack"]).s_per_image
    df["vs_plain"] = [r.s_per_image / base.get((r.model, r.attack), float("nan")) for r in df.itertuples()]
    pd.set_option("display.width", 140)
    print(f"device {dev}, {torch.get_num_threads()} threads, batch {args.batch}")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
