"""Seconds per image of targeted PGD and of ADV² against each interpreter, per model, batched.

    python benchmarks/bench_adv2.py [--device cpu|cuda] [--models shapes_resnet shapes_densenet]
                                    [--interpreters grad cam rts mask] [--batch 8] [--steps 10]
                                    [--random-resnet50] [--fast tf32,channels_last] [--json out.json]

Every attack runs ``--warm`` plain warm-start steps and ``--steps`` ADV² steps (PGD: their sum; ADV²
against MASK: ``--steps`` bilevel iterations, MASK optimised twice with ``--mask-iterations`` Adam
steps: the benign map and one reset). Besides the measured seconds per image, the table extrapolates
linearly to the paper's step counts (Zhang et al.'s Table 11: GRAD 300 + 704, CAM 400 + 1200, RTS
300 + 1000, MASK 400 + 1000 iterations, the benign map and a reset every 50 iterations with 300 MASK
steps each) and prints the seconds per image AdvEdge's Table III reports for ADV² on ResNet-50 (GRAD
32.7, CAM 15.4, MASK 189, RTS 8.8) beside them.
``--random-resnet50`` adds torchvision's ResNet-50 at 224 px with random weights (speed does not
depend on the weights; meant for a GPU). RTS uses an untrained decoder for the same reason. Nothing
is asserted: timings belong here, not in tests.

Everything runs in strict fp32 unless ``--fast`` names speed settings (``benchmarks/speed.py``);
``--json PATH`` also writes the rows (``benchmarks/gpu_report.py`` judges them against the goals).
Each attack runs once untimed on the same batch with one step of each stage first, so lazy CUDA
initialisation and cuDNN's first calls do not count as attack time.
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
from gpu_report import PAPER_SECONDS, PAPER_STEPS  # benchmarks/gpu_report.py
from speed import Rows, add_arguments, speed  # benchmarks/speed.py
from timing import synchronizer, timed  # benchmarks/timing.py


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
    parser.add_argument("--image-size", type=int, default=None,
                        help="images of this size instead of the model's (to try the script quickly on a CPU)")
    add_arguments(parser)
    args = parser.parse_args()
    seed_everything(0)
    dev = resolve_device(args.device)
    sync = synchronizer(dev)

    models = [(name, lambda name=name: get_model(name, device=str(dev), train_budget=args.train_budget))
              for name in args.models]
    if args.random_resnet50:
        models.append((f"resnet50 (random, {args.image_size or 224} px)",
                       lambda: get_model("resnet50", device=str(dev), weights="random")))
    rows = []
    out = Rows(args.json, "adv2", dev, args, batch=args.batch, warm=args.warm, steps=args.steps,
               mask_iterations=args.mask_iterations, image_size=args.image_size, paper_steps=PAPER_STEPS)
    for name, build in models:
        model = build()
        with speed(model, args):
            for row in measure(model, name, dev, sync, args):
                interpreter = row.pop("_interpreter")
                rows.append(row)
                out.add({"model": row["model"], "attack": row["attack"], "interpreter": interpreter,
                         "batch": args.batch, "steps": row["steps"], "s_per_image": row["s/image"],
                         "s_per_image_at_paper_steps": row["s/image at paper steps"],
                         "paper_s_per_image": PAPER_SECONDS.get(interpreter)})
                print({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        del model
    out.close()
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 160)
    print(f"device {dev}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.warm} warm-start + {args.steps} steps, speed settings: {args.fast}")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def adv2_attack(model, iname: str, args, warm: int, steps: int, mask_iterations: int):
    if iname == "rts":
        interp = untrained_rts(model)
    elif iname == "mask":
        interp = get_interpreter("mask", model, iterations=mask_iterations)
    else:
        interp = get_interpreter(iname, model)
    kw = dict(eps=0.031, alpha=1 / 255, warm_steps=warm, steps=steps, confidence=0.0)
    if iname == "mask":
        kw.update(reset_every=steps, reset_iterations=mask_iterations)
    if iname == "rts":
        kw.update(enc_weight=0.1)
    return make_adv2(model, interp, **kw)


def measure(model, name: str, dev, sync, args):
    """PGD, then ADV² against each interpreter, on one batch of random images: one row each."""
    c, h, w = model.info.input_size
    h, w = (args.image_size, args.image_size) if args.image_size else (h, w)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, c, h, w, generator=g).to(dev)
    with torch.no_grad():
        y = model(x).argmax(1)
    t = (y + 1) % model.info.num_classes
    n = len(x)
    pgd_steps = args.warm + args.steps
    pgd = get_attack("pgd", model, targeted=True, eps=0.031, alpha=1 / 255, steps=pgd_steps, random_start=False)
    get_attack("pgd", model, targeted=True, eps=0.031, alpha=1 / 255, steps=1, random_start=False)(x, y, t)  # warm-up
    s_pgd = timed(lambda: pgd(x, y, t), 1, sync, warm_up=False) / n
    per_step = s_pgd / pgd_steps
    yield {"model": name, "attack": "PGD", "_interpreter": None, "steps": pgd_steps, "s/image": s_pgd,
           "s/image at paper steps": per_step * 1000, "paper s/image (ResNet-50)": float("nan")}
    for iname in args.interpreters:
        # one untimed pass with a step of each stage: CUDA's lazy set-up and the first double backward
        # through this interpreter are not part of the attack's time
        adv2_attack(model, iname, args, 1, 1, 1)(x, y, t)
        sync()
        attack = adv2_attack(model, iname, args, args.warm, args.steps, args.mask_iterations)
        s = timed(lambda: attack(x, y, t), 1, sync, warm_up=False) / n
        warm, main_steps = PAPER_STEPS[iname]
        if iname == "mask":
            # The run holds two MASK optimisations of args.mask_iterations Adam steps (the benign map,
            # and the reset before the first iteration, since reset_every = steps), each step about one
            # PGD step's cost; the rest is bilevel iterations. The paper's schedule has the benign map
            # plus a reset every 50 iterations (1000 // 50 = 20), each of 300 MASK steps.
            mask_step = per_step
            iteration = (s - args.warm * per_step - 2 * args.mask_iterations * mask_step) / args.steps
            at_paper = warm * per_step + main_steps * iteration + (1 + main_steps // 50) * 300 * mask_step
        else:
            iteration = (s - args.warm * per_step) / args.steps
            at_paper = warm * per_step + main_steps * iteration
        yield {"model": name, "attack": f"ADV² {iname.upper()}", "_interpreter": iname, "steps": args.warm + args.steps,
               "s/image": s, "s/image at paper steps": at_paper, "paper s/image (ResNet-50)": PAPER_SECONDS[iname]}


if __name__ == "__main__":
    main()
