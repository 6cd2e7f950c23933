"""Each opt-in speed setting against strict fp32: seconds, and the largest change it makes to results.

    python benchmarks/bench_knobs.py [--device cuda] [--batch 32] [--image-size 224] [--repeats 3]
                                     [--knobs tf32 channels_last bf16 cudnn_benchmark combined compile]
                                     [--workloads forward grad pgd adv2_grad ig] [--budget 90] [--json out.json]

On ResNet-50 with random weights (speed does not depend on the weights), one batch of random images
goes through five workloads, first in strict fp32 (TF32 off, deterministic kernels: the baseline),
then under each setting of :mod:`advxai.accelerate` (``combined``: TF32, channels-last and cuDNN's
autotuning at once, the three that keep fp32 storage) and under
``torch.compile`` of the model (``compile``: forward and first-order backward only; double backward
through a compiled graph is not supported by PyTorch, so ADV² is left out there). For each pair the
row holds both times, the speed-up, and the difference from fp32 with its tolerance:

=============  =================================================  ========================================
workload       difference measured                                tolerance, and why
=============  =================================================  ========================================
``forward``    max |logits - fp32| / max |fp32 logits|            0.01: a 1 % change moves only near-ties
``grad``       max |map - fp32 map| (GRAD maps in [0, 1])         0.05 of the map's range
``pgd``        share of pixels whose step (the sign of the loss   0.01: one pixel in a hundred steps the
               gradient at the clean image) flips                 other way
``adv2_grad``  as ``pgd``, for the second-order gradient ADV²     0.01
               steps along (of the GRAD map's squared norm,
               through the smooth ReLU surrogate)
``ig``         max |attr - fp32| / max |fp32 attr| (16 points)    0.05
=============  =================================================  ========================================

The times are those of the whole computation (``pgd``: 10 steps; ``adv2_grad``: ADV² on GRAD with two
warm-start and ``--adv2-steps`` steps). For the attacks the step is compared rather than the final
image because sign steps turn any rounding change into a different path: on a CPU at 64 px,
channels-last fp32 kernels, which only add in another order, flip 0.02 % of the first step's signs,
yet the PGD images after 10 steps differ by a fifth of the budget on average. The final images'
differences are recorded too (``x_adv_mean_diff_over_eps``, ``x_adv_max_abs_diff``), unjudged.

``benchmarks/gpu_report.py`` keeps a setting only when every workload stays within tolerance and the
setting is faster in total, and only on a GPU run. ``--budget`` (seconds) stops starting new
measurements once spent; what was left out is recorded as skipped. Nothing is asserted here.
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch
import torch.nn.functional as F

from advxai.accelerate import fast_math
from advxai.attacks import get_attack, make_adv2
from advxai.interpreters import get_interpreter
from advxai.models import get_model
from advxai.runtime import resolve_device, seed_everything
from speed import Rows  # benchmarks/speed.py
from timing import synchronizer, timed  # benchmarks/timing.py

SETTINGS = {  # name -> fast_math keywords (the baseline is strict fp32)
    "fp32": {"tf32": False},
    "tf32": {"tf32": True},
    "channels_last": {"tf32": False, "channels_last": True},
    "bf16": {"tf32": False, "bf16": True},
    "cudnn_benchmark": {"tf32": False, "cudnn_benchmark": True},
    # the settings that keep fp32 storage, together; bf16 is judged on its own (it changes results most)
    "combined": {"tf32": True, "channels_last": True, "cudnn_benchmark": True},
    "compile": {"tf32": False},
}
TOLERANCE = {"forward": 0.01, "grad": 0.05, "pgd": 0.01, "adv2_grad": 0.01, "ig": 0.05}
MEASURE = {
    "forward": "max |logits - fp32| / max |fp32 logits|",
    "grad": "max |map - fp32 map|",
    "pgd": "share of pixels whose step sign flips (loss gradient at the clean image)",
    "adv2_grad": "share of pixels whose step sign flips (gradient of the GRAD map's squared norm)",
    "ig": "max |attr - fp32 attr| / max |fp32 attr|",
}
ATTACKS = ("pgd", "adv2_grad")
EPS = 8 / 255


class Workload:
    """``run(model)``: the timed computation and its result; ``probe(model)``: what is compared with fp32
    (the result itself, or for attacks the step direction at the clean images)."""

    def __init__(self, run, probe=None):
        self.run, self.probe = run, probe or run


def workloads(x, y, t, args) -> dict[str, Workload]:
    def forward(m):
        with torch.no_grad():
            return m(x).float()

    def grad(m):
        return get_interpreter("grad", m)(x, target=y).maps.float()

    def pgd(m):
        return get_attack("pgd", m, eps=EPS, alpha=1 / 255, steps=10, random_start=False)(x, y).x_adv

    def pgd_step(m):
        xi = x.clone().requires_grad_(True)
        g, = torch.autograd.grad(F.cross_entropy(m(xi).float(), y), xi)
        return g

    def adv2_grad(m):
        return make_adv2(m, "grad", eps=EPS, alpha=1 / 255, warm_steps=2, steps=args.adv2_steps,
                         confidence=0.0)(x, y, t).x_adv

    def adv2_step(m):
        xi = x.clone().requires_grad_(True)
        maps = get_interpreter("grad", m).explain(xi, target=t, create_graph=True).maps
        g, = torch.autograd.grad(maps.float().pow(2).sum(), xi)
        return g

    def ig(m):
        return get_interpreter("ig", m, steps=16, internal_batch_size=64)(x, target=y).raw.float()

    return {"forward": Workload(forward), "grad": Workload(grad), "pgd": Workload(pgd, pgd_step),
            "adv2_grad": Workload(adv2_grad, adv2_step), "ig": Workload(ig)}


def difference(workload: str, ref: torch.Tensor, out: torch.Tensor) -> float:
    """The compared difference, as the table in the docstring says."""
    ref, out = ref.float(), out.float()
    if workload in ATTACKS:
        moving = ref != 0
        flipped = (torch.sign(out) != torch.sign(ref)) & moving
        return float(flipped.sum()) / max(int(moving.sum()), 1)
    largest = float((out - ref).abs().max())
    if workload in ("forward", "ig"):
        return largest / max(float(ref.abs().max()), 1e-12)
    return largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after one untimed call")
    parser.add_argument("--adv2-steps", type=int, default=3)
    parser.add_argument("--knobs", nargs="*", default=[k for k in SETTINGS if k != "fp32"],
                        choices=[k for k in SETTINGS if k != "fp32"])
    parser.add_argument("--workloads", nargs="*", default=list(TOLERANCE), choices=list(TOLERANCE))
    parser.add_argument("--budget", type=float, default=None, help="seconds after which no new measurement starts")
    parser.add_argument("--compile-reserve", type=float, default=60.0,
                        help="seconds of budget a first compiled call needs to be started")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()
    args.fast = "none"  # the header of the rows: the baseline is strict fp32
    t_start = time.perf_counter()
    seed_everything(0)
    dev = resolve_device(args.device)
    sync = synchronizer(dev)
    model = get_model("resnet50", device=str(dev), weights="random")
    x = torch.rand(args.batch, 3, args.image_size, args.image_size, generator=torch.Generator().manual_seed(0)).to(dev)
    with torch.no_grad(), fast_math(model, tf32=False):
        y = model(x).argmax(1)
    t = (y + 1) % model.info.num_classes
    work = {k: v for k, v in workloads(x, y, t, args).items() if k in args.workloads}
    out = Rows(args.json, "knobs", dev, args, batch=args.batch, image_size=args.image_size, repeats=args.repeats,
               tolerance=TOLERANCE, measure=MEASURE, settings={k: SETTINGS[k] for k in args.knobs})

    def over_budget(needs: float = 0.0) -> bool:
        return args.budget is not None and time.perf_counter() - t_start + needs > args.budget

    baseline: dict[str, dict] = {}
    for name, w in work.items():
        if over_budget():
            break
        with fast_math(model, **SETTINGS["fp32"]):
            result = w.run(model).detach()  # also the untimed first call
            seconds = timed(lambda: w.run(model), args.repeats, sync, warm_up=False)
            baseline[name] = {"s": seconds, "result": result, "probe": w.probe(model).detach()}
        print(f"fp32 {name}: {seconds / args.batch:.4g} s/image", flush=True)

    for knob in args.knobs:
        compiled, compile_error = None, None
        for name, w in work.items():
            row = {"knob": knob, "workload": name, "batch": args.batch, "measure": MEASURE[name],
                   "tolerance": TOLERANCE[name], "baseline_s": None, "knob_s": None, "speedup": None,
                   "diff": None, "within_tolerance": None, "error": None}
            compiling = knob == "compile" and name != "adv2_grad"  # each may compile a new graph
            if name not in baseline or over_budget(args.compile_reserve if compiling else 0.0):
                row["error"] = "skipped: time budget spent"
                out.add(row)
                continue
            base = baseline[name]
            row["baseline_s"] = base["s"]
            try:
                m = model
                if knob == "compile":
                    if name == "adv2_grad":
                        # not attempted: compiling costs a minute for PyTorch's answer, which is
                        # "torch.compile with aot_autograd does not currently support double backward"
                        raise NotImplementedError("torch.compile does not support double backward (not attempted)")
                    if compile_error:
                        raise RuntimeError(compile_error)
                    if compiled is None:
                        compiled = torch.compile(model, dynamic=False)
                    m = compiled
                t0 = time.perf_counter()
                with fast_math(model, **SETTINGS[knob]):
                    result = w.run(m).detach()  # untimed: compiles, autotunes, initialises
                    sync()
                    if knob == "compile":
                        row["compile_s"] = time.perf_counter() - t0
                    seconds = timed(lambda: w.run(m), args.repeats, sync, warm_up=False)
                    probe = w.probe(m).detach()
                diff = difference(name, base["probe"], probe)
                row.update(knob_s=seconds, speedup=base["s"] / seconds, diff=diff, within_tolerance=diff <= TOLERANCE[name])
                if name in ATTACKS:
                    delta = (result.float() - base["result"].float()).abs()
                    row.update(x_adv_mean_diff_over_eps=float(delta.mean()) / EPS, x_adv_max_abs_diff=float(delta.max()))
            except Exception as exc:  # a setting that fails is a result to record, not the end of the run
                text = str(exc).strip().splitlines()
                row["error"] = f"{type(exc).__name__}: {text[0][:300] if text else ''}"
                if knob == "compile" and name == "forward":
                    compile_error = row["error"]
            out.add(row)
            print({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items() if k != "measure"}, flush=True)
        del compiled
    out.close()
    table = pd.DataFrame(out.rows)
    pd.set_option("display.width", 200)
    print(f"device {dev}, batch {args.batch}, {args.image_size} px, {args.repeats} repeats; baseline strict fp32")
    cols = ["knob", "workload", "baseline_s", "knob_s", "speedup", "diff", "tolerance", "within_tolerance", "error"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
