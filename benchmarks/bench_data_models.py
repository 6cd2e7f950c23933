"""Speed of the embedded data and models: shapes generation, and forward / backward per image.

    python benchmarks/bench_data_models.py [--device cpu|cuda] [--batch 32] [--repeats 5]

Prints a table; nothing is asserted (timings belong here, not in tests). Models trained here are
loaded from the cache (trained first if missing, which is not timed).
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from advxai.data.shapes import generate
from advxai.models import get_model
from advxai.runtime import resolve_device
from timing import synchronizer, timed  # benchmarks/timing.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=["digits_cnn", "digits_vgg", "shapes_resnet",
                                                         "shapes_densenet", "efficientnet_lite0"])
    args = parser.parse_args()
    dev = resolve_device(args.device)
    sync = synchronizer(dev)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    generate(1000, "val", seed=123)
    rate = 1000 / (time.perf_counter() - t0) * 60
    torch.set_num_threads(threads)
    print(f"shapes generation: {rate:,.0f} images per minute on one CPU core")

    rows = []
    for name in args.models:
        model = get_model(name, device=str(dev))
        x = torch.rand(args.batch, *model.info.input_size, device=dev)

        def forward():
            with torch.no_grad():
                model(x)

        def backward():
            xi = x.clone().requires_grad_(True)
            model(xi).logsumexp(1).sum().backward()

        def double_backward():
            xi = x.clone().requires_grad_(True)
            g, = torch.autograd.grad(model(xi).logsumexp(1).sum(), xi, create_graph=True)
            g.abs().sum().backward()

        row = {"model": name, "input": "x".join(map(str, model.info.input_size)), "batch": args.batch}
        for label, fn in (("forward", forward), ("forward+backward", backward), ("second order", double_backward)):
            row[f"{label} ms/image"] = 1000 * timed(fn, args.repeats, sync) / args.batch
        rows.append(row)
    print(f"device: {dev}, threads: {torch.get_num_threads()}")
    print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
