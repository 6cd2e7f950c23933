"""LRP speed: this package's deep Taylor decomposition beside zennit's, on the same model and batch.

    python benchmarks/bench_lrp.py [--device cpu|cuda] [--repeats 3] [--models digits_vgg efficientnet_lite0 vgg19]
                                   [--batch 32] [--fast tf32] [--json out.json]

Both compute z+ in the hidden layers and z^B (the normalised pixel box) at the input layer, with
BatchNorm merged into the convolutions (zennit: its SequentialMergeBatchNorm canonizer). The table
gives seconds per image for each, a plain forward + backward pass as the yardstick, and the ratio
ours / zennit. Nothing is asserted (timings belong here, not in tests). torchvision models run with
random weights (speed does not depend on the weights). ``--fast`` and ``--json`` as in
``benchmarks/speed.py`` (zennit runs under the same speed settings).
"""
from __future__ import annotations

import argparse

import pandas as pd
import torch

from advxai.interpreters.lrp import LRP
from advxai.models import get_model
from advxai.runtime import resolve_device
from speed import Rows, add_arguments, speed  # benchmarks/speed.py
from timing import synchronizer, timed  # benchmarks/timing.py

DEFAULT_BATCH = {"digits_vgg": 64, "digits_cnn": 64, "efficientnet_lite0": 8, "vgg19": 4, "resnet50": 8}


def zennit_dtd(model):
    from zennit.attribution import Gradient
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import SpecialFirstLayerMapComposite
    from zennit.rules import Norm, Pass, ZBox, ZPlus
    from zennit.types import Activation, AvgPool, Convolution, Linear

    low = (0 - model.mean) / model.std
    high = (1 - model.mean) / model.std
    composite = SpecialFirstLayerMapComposite(
        layer_map=[(Activation, Pass()), (AvgPool, Norm()), (Convolution, ZPlus(zero_params="bias")),
                   (Linear, ZPlus(zero_params="bias"))],
        first_map=[(Convolution, ZBox(low, high, zero_params="bias"))], canonizers=[SequentialMergeBatchNorm()])

    def run(x):
        with torch.no_grad():
            target = model(x).argmax(1)
        seed = torch.nn.functional.one_hot(target, model.info.num_classes).float()
        with Gradient(model=model, composite=composite) as attributor:
            attributor(x.clone().requires_grad_(True), seed)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=["digits_vgg", "efficientnet_lite0", "vgg19", "resnet50"])
    parser.add_argument("--batch", type=int, default=None, help="images per batch (default: per model)")
    parser.add_argument("--image-size", type=int, default=None, help="images of this size (a quick try on a CPU)")
    add_arguments(parser)
    args = parser.parse_args()
    dev = resolve_device(args.device)
    sync = synchronizer(dev)
    rows = []
    out = Rows(args.json, "lrp", dev, args, image_size=args.image_size)
    for name in args.models:
        kwargs = {"weights": "random"} if name in ("vgg19", "resnet50") else {}
        model = get_model(name, device=str(dev), **kwargs)
        b = args.batch or DEFAULT_BATCH.get(name, 8)
        c, h, w = model.info.input_size
        h, w = (args.image_size, args.image_size) if args.image_size else (h, w)
        x = torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(0)).to(dev)
        ours = LRP(model)

        def fwd_bwd():
            xx = x.clone().requires_grad_(True)
            model(xx).max(1).values.sum().backward()

        with speed(model, args):
            t_ours = timed(lambda: ours(x), args.repeats, sync)
            zennit_run = zennit_dtd(model)
            t_zennit = timed(lambda: zennit_run(x), args.repeats, sync)
            t_grad = timed(fwd_bwd, args.repeats, sync)
        label = f"{name} (random)" if kwargs else name
        rows.append({"model": label, "device": dev.type, "batch": b, "ours s/image": t_ours / b,
                     "zennit s/image": t_zennit / b, "forward+backward s/image": t_grad / b,
                     "ours / zennit": t_ours / t_zennit, "ours / forward+backward": t_ours / t_grad})
        out.add({"model": label, "batch": b, "method": "lrp", "ours_s_per_image": t_ours / b, "peer": "zennit LRP",
                 "peer_s_per_image": t_zennit / b, "ratio": t_ours / t_zennit,
                 "forward_backward_s_per_image": t_grad / b})
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    out.close()
    print()
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
