"""Seconds per image of targeted PGD and of ADV² against each interpreter, per model, batched.

    python benchmarks/bench_adv2.py [--device cpu|cuda] [--models shapes_resnet shapes_densenet]
                                    [--interpreters grad cam rts mask] [--batch 8] [--steps 10]
                                    [--random-resnet50]

Every attack runs ``--warm`` plain warm-start steps and ``--steps`` ADV² steps (PGD: their sum; ADV²
against MASK: ``--steps`` bilevel iterations, MASK recomputed once with ``--mask-iterations`` Adam
steps). Besides the measured seconds per image, the table extrapolates linearly to the paper's step
counts (Zhang et al.'s Table 11: GRAD 300 + 704, CAM 400 + 1200, RTS 300 + 1000, MASK 400 + 1000
iterations, resets every 50 with 300 MASK steps) and prints the seconds per image AdvEdge's Table III
reports for ADV² on ResNet-50 (GRAD 32.7, CAM 15.4, MASK 189, RTS 8.8) beside them.
``--random-resnet50`` adds torchvision's ResNet-50 at 224 px with random weights (speed does not
depend on the weights; meant for a GPU). RTS uses an untrained decoder for the same reason. Nothing
is asserted: timings belong here, not in tests.
"""
from __future__ import annotations

import argparse

import pandas as pd
import torch

from advxai.attacks import get_attack, make_adv2
from advxai.interpreters import RTS, get_interpreter
from advxai.interpreters.rts import RTSConfig, RTSDecoder, encoder_layers
from advxai.models import get_model
from advxai.runtime import resolve_device, seed_everything
from timing import synchronizer, timed  # benchmarks/timing.py

PAPER_STEPS = {"grad": (300, 704), "cam": (400, 1200), "rts": (300, 1000), "mask": (400, 1000)}
PAPER_SECONDS = {"grad": 32.7, "cam": 15.4, "mask": 189.0, "rts": 8.8}  # AdvEdge's Table III, ADV², ResNet-50


def untrained_rts(model) -> RTS:
    layers = encoder_layers(model)
    c, h, w = model.info.input_size
    with torch.no_grad():
        _, feats = model.forward_with(torch.zeros(1, c, h, w, device=model.device), layers)
    cfg = RTSConfig()
    decoder = RTSDecoder([f.shape[1] for f in feats], model.info.num_classes, cfg.width)
    payload = {"state_dict": decoder.state_dict(), "history": [], "channels": [f.shape[1] for f in feats]}
    return RTS(model, layers=layers, config=cfg, payload=payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="*", default=["shapes_resnet", "shapes_densenet"])
    parser.add_argument("--interpreters", nargs="*", default=["grad", "cam", "rts", "mask"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--mask-iterations", type=int, default=50)
    parser.add_argument("--train-budget", default="full")
    parser.add_argument("--random-resnet50", action="store_true")
    args = parser.parse_args()
    seed_everything(0)
    dev = resolve_device(args.device)
    sync = synchronizer(dev)

    models = [(name, lambda name=name: get_model(name, device=str(dev), train_budget=args.train_budget))
              for name in args.models]
    if args.random_resnet50:
        models.append(("resnet50 (random, 224 px)", lambda: get_model("resnet50", device=str(dev), weights="random")))
    rows = []
    for name, build in models:
        model = build()
        c, h, w = model.info.input_size
        g = torch.Generator().manual_seed(0)
        x = torch.rand(args.batch, c, h, w, generator=g).to(dev)
        with torch.no_grad():
            y = model(x).argmax(1)
        t = (y + 1) % model.info.num_classes
        n = len(x)
        pgd_steps = args.warm + args.steps
        pgd = get_attack("pgd", model, targeted=True, eps=0.031, alpha=1 / 255, steps=pgd_steps, random_start=False)
        pgd(x[:1], y[:1], t[:1])  # warm-up
        s_pgd = timed(lambda: pgd(x, y, t), 1, sync, warm_up=False) / n
        per_step = s_pgd / pgd_steps
        rows.append({"model": name, "attack": "PGD", "steps": pgd_steps, "s/image": s_pgd,
                     "s/image at paper steps": per_step * 1000, "paper s/image (ResNet-50)": float("nan")})
        for iname in args.interpreters:
            if iname == "rts":
                interp = untrained_rts(model)
            elif iname == "mask":
                interp = get_interpreter("mask", model, iterations=args.mask_iterations)
            else:
                interp = get_interpreter(iname, model)
            kw = dict(eps=0.031, alpha=1 / 255, warm_steps=args.warm, steps=args.steps, confidence=0.0)
            if iname == "mask":
                kw.update(reset_every=args.steps, reset_iterations=args.mask_iterations)
            if iname == "rts":
                kw.update(enc_weight=0.1)
            attack = make_adv2(model, interp, **kw)
            s = timed(lambda: attack(x, y, t), 1, sync, warm_up=False) / n
            warm, main_steps = PAPER_STEPS[iname]
            if iname == "mask":
                # per bilevel iteration (one reset of args.mask_iterations included), plus the paper's
                # resets: 20 x 300 MASK steps, each about one PGD step's cost
                mask_step = per_step
                iteration = (s - args.warm * per_step - args.mask_iterations * mask_step) / args.steps
                at_paper = warm * per_step + main_steps * iteration + (main_steps // 50) * 300 * mask_step
            else:
                iteration = (s - args.warm * per_step) / args.steps
                at_paper = warm * per_step + main_steps * iteration
            rows.append({"model": name, "attack": f"ADV² {iname.upper()}", "steps": args.warm + args.steps, "s/image": s,
                         "s/image at paper steps": at_paper, "paper s/image (ResNet-50)": PAPER_SECONDS[iname]})
        del model
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 160)
    print(f"device {dev}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.warm} warm-start + {args.steps} steps")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
