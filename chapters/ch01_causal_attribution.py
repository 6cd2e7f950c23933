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
# # Attribution-driven causal analysis (Jha et al.)
#
# **The paper.** Jha, Raj, Fernandes, Jha, Jha, Verma, Jalaian and Swami, *Attribution-driven Causal
# Analysis for Detection of Adversarial Examples* (2019), explain each prediction with Integrated
# Gradients (IG, black baseline), then mask the pixels with the highest positive attribution (set
# them to the baseline) and watch the label. Their hypothesis: a benign input keeps its label when
# a few top-attributed pixels are removed, because its evidence is spread out; an adversarial input
# changes label, because the features that carry the wrong decision are few and concentrated. The
# smallest masked fraction $\delta$ that changes the label is the input's robustness $\rho$ (their
# Algorithm 1, granularity $\epsilon$); a detector flags inputs with small $\rho$.
#
# Their headline numbers:
#
# * **MNIST.** Masking the top 10 % of attributions leaves 94 % of benign labels unchanged, the top
#   20 % leaves 81 %. At 20 %, the labels of adversarial images change for FGSM 72 %, DeepFool 67 %,
#   C&W 53 %, PGD 68 % (their Fig. 3, left).
# * **ImageNet.** 82 % of benign labels survive masking 0.1 % of the pixels, 67 % survive 0.4 %. At
#   0.4 %, the labels change for FGSM (ε = 2, 5, 10 of 255) 76 %, 71 %, 75 %, PGD (ε = 2) 71 %,
#   C&W 97 %, DeepFool 95 % (Fig. 3, right).
# * **Physical attacks on Inception-v3, 1,000 images.** A banana and a toaster adversarial patch
#   (25 % of the image) fool 347 and 376 images; a LaVAN baseball patch (50 × 50 px) fools 747.
#   Masking 0.4 % detects 99.71 %, 98.14 % and 99.20 % of them. Smaller patches (sizes 25–40 %)
#   are easier to detect (Fig. 4).
#
# This chapter runs each experiment on real MNIST with an MNIST-trained CNN, and on the embedded
# ImageNet stand-in (eight photographs, EfficientNet-Lite0 with its ImageNet weights; the `paper`
# profile: ImageNet, Inception-v3 at 299 px). It adds ROC curves and false-positive rates the paper
# does not give, and compares every headline number with ours (`advxai.studies.causal_attribution`).
#
# **Choices the paper leaves open, and ours** (see `advxai.defenses.causal_masking`):
#
# * *Which images.* The evaluated images are drawn at random (by seed, stratified over classes)
#   among the test images the model classifies correctly; they are the benign inputs and the
#   attacked ones. Only adversarial images that changed the label are analysed.
# * *How colour channels combine.* IG gives one attribution per pixel value; a pixel's score is the
#   **sum over its colour channels** (the change of the output its three values account for
#   together; summing keeps IG's completeness per pixel). Masking a pixel sets **all its channels**
#   to the baseline (black). Only pixels with a positive score are ever masked (the paper's $N^+$).
# * *What $\delta$ counts.* On MNIST $\delta$ is a fraction of the **positive-attribution pixels**
#   (Algorithm 1 as written: the top $\lceil \delta m \rceil$ of the $m$ positive pixels; the paper's
#   Fig. 3 left says "% of masked attributions"). On ImageNet it is a fraction of **all pixels** (the
#   figures say "% of pixels", and 0.1–0.4 % only makes sense as a share of all pixels): the top
#   $\lceil \delta k \rceil$ of the $k$ pixels are masked, positive ones only. Both are parameters
#   (`mnist_fraction_of`, `imagenet_fraction_of`).
# * *IG.* Black baseline, the logit of the predicted class, Gauss–Legendre quadrature with
#   `mnist_ig_steps` / `imagenet_ig_steps` points (the paper gives no number).

# %% tags=["parameters"]
device = "auto"  # auto | cpu | cuda | cuda:N
seed = 0
train_budget = "full"  # full | smoke: the MNIST model's training (chapter 0 trains it)
engine = "local"  # local | ray: where per-image work runs
ray_address = "auto"  # with the ray engine: the cluster's head, or auto
shard_size = None  # images per shard (None: one shard per job)
# MNIST (the paper's Sec. 4.1, Fig. 3 left)
mnist_dataset = "mnist"  # mnist | digits (scikit-learn's 8x8 scans, a faster stand-in)
mnist_model = "mnist_cnn"  # trained on mnist_dataset: mnist_cnn | digits_cnn
n_mnist = 500  # correctly classified test digits drawn (benign and attacked)
mnist_fgsm_eps = [0.1, 0.3]  # FGSM sweep, pixel units (claim: the largest)
mnist_pgd_eps = 0.3
mnist_pgd_steps = 10
mnist_cw_c = 1.0  # C&W's first constant (x10 while it fails)
mnist_cw_lr = 0.1  # C&W's Adam step (few steps need large ones)
mnist_cw_steps = 30
mnist_cw_search = 2  # binary-search steps over C&W's constant
mnist_deepfool_steps = 50
mnist_ig_steps = 16  # IG quadrature points (the paper gives none)
mnist_epsilon = 0.02  # Algorithm 1's granularity
mnist_max_delta = 0.3  # the largest fraction masked
mnist_fraction_of = "positive"  # positive | all: what delta is a fraction of
# ImageNet (Sec. 4.2, Fig. 3 right); embedded stand-in: eight photographs
imagenet_dataset = "photos"  # photos | imagenet
imagenet_model = "efficientnet_lite0"  # efficientnet_lite0 | inception_v3 | ...
imagenet_image_size = 224  # the photos' side; 0: the model's input size (299 for Inception-v3, or --image-size)
n_imagenet = 8  # correctly classified images drawn (the photos hold 8)
imagenet_fgsm_eps = [2, 5, 10]  # in 1/255, the paper's
imagenet_pgd_eps = 2  # in 1/255, the paper's
imagenet_pgd_steps = 10
imagenet_cw_c = 0.1
imagenet_cw_steps = 30
imagenet_cw_search = 2
imagenet_deepfool_steps = 20
imagenet_ig_steps = 8
imagenet_ig_batch = 16  # IG points x images per pass (memory; larger on a GPU)
imagenet_epsilon = 0.0005  # granularity, a fraction of all pixels
imagenet_max_delta = 0.004
imagenet_fraction_of = "all"
# physical attacks (Sec. 4.3, Fig. 4)
patch_targets = [954, 859]  # ImageNet banana, toaster
lavan_target = 429  # ImageNet baseball
patch_size = 0.25  # fraction of the image covered
patch_scale = [1.0, 1.6]  # area multipliers while training: 25-40 %
lavan_size = 0.028  # 50 x 50 px on a 299 x 299 image
patch_sizes = [0.25, 0.40]  # the size sweep (Fig. 4 right: 0.25-0.40 by 0.05)
patch_steps = 30
patch_lr = 0.05
patch_train_batch = 4
patch_train_split = None  # None: cross-fit on the evaluated images; or a split
patch_folds = 2  # cross-fitting folds (without patch_train_split)
n_patch_train = 0  # images drawn from patch_train_split
n_augmented = 64  # augmented copies learned on (0: the images themselves)
patch_placements = 8  # random placements per image
n_detect = 8  # fooled images analysed per patch (one placement each)
detect_delta = 0.004  # the paper's operating point, 0.4 %

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

import advxai.engine
from advxai import claims, plots, report
from advxai.runtime import resolve_device, seed_everything
from advxai.studies import causal_attribution as study

seed_everything(seed)
advxai.engine.configure(engine, address=ray_address, shard_size=shard_size)
dev = resolve_device(device)
timings = report.Timings()
print(f"device: {dev}, threads {torch.get_num_threads()}, engine: {engine}")

# %% [markdown]
# ## 1. MNIST: benign inputs against FGSM, DeepFool, C&W and PGD
#
# The drawn test digits are attacked untargeted. Adversarial sets are cached by name and settings
# (`advxai.attacks.adversarial_set`), so a re-execution loads them.

# %%
mnist = study.masking_study(
    "mnist", mnist_dataset, mnist_model, n_mnist,
    study.mnist_attacks(mnist_fgsm_eps, mnist_pgd_eps, mnist_pgd_steps, mnist_cw_steps, mnist_cw_search,
                        seed, mnist_deepfool_steps, mnist_cw_c, mnist_cw_lr),
    ig_steps=mnist_ig_steps, epsilon=mnist_epsilon, max_delta=mnist_max_delta,
    fraction_of=mnist_fraction_of, points=(0.10, 0.20), seed=seed, device=device,
    train_budget=train_budget, timings=timings)
report.show(mnist.attack_table, f"Attacks on {mnist_model}: {len(mnist.index)} correctly classified "
                                f"{mnist_dataset} test digits (of {mnist.looked_at} looked at)")

# %% mystnb={"figure": {"caption": "Share of labels changed as the top attributions are masked (their Fig. 3, left). The paper's claim is a gap: benign labels rarely change, adversarial ones often. Read the curves at 10 % and 20 %.", "name": "fig-ch01-mnist"}}
fig = plots.curves(100 * mnist.deltas, study.curve_lines(mnist.curves),
                   xlabel=f"% of top attributions masked ({mnist_fraction_of} pixels)",
                   ylabel="% of labels changed", title=f"{mnist_dataset}, {mnist_model}", ylim=(0, 100))
plt.show()

# %%
ig_err = mnist.benign.extras["ig_delta"].abs()
report.glue("mnist_ig_err", float(ig_err.median()))
report.show(mnist.summary, "MNIST: share of labels changed when masking the top 10 % / 20 % "
                           "(ρ = inf: never changed)")
display(Markdown(study.observation(mnist.benign, mnist.adversarial, 0.2,
                                   f"the top 20 % of the {mnist_fraction_of} pixels")))

# %% tags=["nbval-check-output", "remove-cell"]
for n, r in mnist.results.items():
    print(f"{n}: n={len(r)}, changed at 20%: {study.changed_count(r, 0.2)}")

# %% [markdown]
# IG's completeness (an image's attributions sum to its logit minus the baseline's) holds to a
# median error of {glue:text}`mnist_ig_err:.1e` logit units on the benign digits: the error of
# the quadrature, which shrinks with more IG points (`mnist_ig_steps`).
#
# ## 2. ImageNet: the same at 0.1–0.4 % of the pixels
#
# The drawn images are attacked untargeted with FGSM at ε = 2, 5, 10 of 255, PGD at ε = 2/255
# (random start), C&W L2 and DeepFool, as in the paper. On the embedded photographs n is at most
# eight: read the rates as counts, and the intervals of section 5 as what they allow.

# %%
imagenet = study.masking_study(
    "imagenet", imagenet_dataset, imagenet_model, n_imagenet,
    study.photo_attacks(imagenet_fgsm_eps, imagenet_pgd_eps, imagenet_pgd_steps, imagenet_cw_steps,
                        imagenet_cw_search, imagenet_deepfool_steps, seed, imagenet_cw_c),
    ig_steps=imagenet_ig_steps, epsilon=imagenet_epsilon, max_delta=imagenet_max_delta,
    fraction_of=imagenet_fraction_of, points=(0.001, 0.004), seed=seed, device=device,
    train_budget=train_budget, image_size=imagenet_image_size, ig_batch=imagenet_ig_batch, batch_size=8,
    linf_scale=255,
    timings=timings)
report.show(imagenet.attack_table, f"Attacks on {imagenet_model}: {len(imagenet.index)} correctly classified "
                                   f"{imagenet_dataset} images (of {imagenet.looked_at} looked at); L-inf in 1/255")

# %% mystnb={"figure": {"caption": "Share of labels changed as the top-attributed pixels are masked (their Fig. 3, right; x axis in % of all pixels). The paper finds the adversarial curves above the benign one: compare them at 0.1 % and 0.4 %, in steps of one image.", "name": "fig-ch01-imagenet"}}
fig = plots.curves(100 * imagenet.deltas, study.curve_lines(imagenet.curves),
                   xlabel="% of pixels masked (top positive attributions)", ylabel="% of labels changed",
                   title=f"{imagenet_dataset}, {imagenet_model}", ylim=(0, 100))
plt.show()

# %%
report.glue("imagenet_ig_err", float(imagenet.benign.extras["ig_delta"].abs().median()))
report.show(imagenet.summary, "ImageNet: share of labels changed when masking 0.1 % / 0.4 % of the pixels")
display(Markdown(study.observation(imagenet.benign, imagenet.adversarial, 0.004, "0.4 % of the pixels")))

# %% tags=["nbval-check-output", "remove-cell"]
for n, r in imagenet.results.items():
    print(f"{n}: n={len(r)}, changed at 0.4%: {study.changed_count(r, 0.004)}")

# %% [markdown]
# IG's completeness error on these images: a median of {glue:text}`imagenet_ig_err:.1e` logit
# units with `imagenet_ig_steps` points.
#
# ### Image rows (their Fig. 1)
#
# Each row: the input with its label, the positive part of its IG map (the saliency the masking
# ranks), and the input with its top 0.2 % and top 2 % pixels masked, each titled with the
# model's label. Adversarial rows use the same image where its attack fooled the model.

# %% mystnb={"figure": {"caption": "A benign image and two of its adversarial versions: input, positive IG map, top 0.2 % and top 2 % masked, each with the model's label. Look at where the positive attribution sits and whether masking 0.2 % already changes the adversarial label.", "name": "fig-ch01-rows"}}
names = imagenet.data.classes
rows = [("benign", imagenet.x, imagenet.benign, 0)]
for name in (f"FGSM ε={imagenet_fgsm_eps[0]}/255", "DeepFool"):
    r = imagenet.attacks.get(name)
    k = None if r is None else study.first_success(r)
    if k is not None:
        rows.append((name, r.x_adv[r.success], imagenet.results[name], k))
fig = plots.panel_rows(study.image_rows(imagenet.model, imagenet.masking, rows, names))
plt.show()

# %% [markdown]
# ## 3. Physical attacks: adversarial patches and LaVAN
#
# Two universal adversarial patches (Brown et al.; circles, learned with random location, scale
# 25–40 % of the image and rotation up to 22.5°) for the classes banana and toaster, and a LaVAN
# patch (Karmon et al.; a square at random locations, no scaling or rotation) for baseball, its size
# the 50 × 50-at-299 share of the image (2.8 %). A patch is pasted at `patch_placements` random
# places on every evaluated image (images of its own target class left out); an image is fooled
# at a placement when the model then predicts the target. For the detector, each fooled image
# contributes its first fooled placement, so detection rates are rates over distinct images.
# **Training and evaluation images are disjoint:**

# %%
patches = study.patch_study(
    imagenet, patch_targets=patch_targets, lavan_target=lavan_target, patch_size=patch_size,
    patch_scale=patch_scale, lavan_size=lavan_size, steps=patch_steps, lr=patch_lr,
    train_batch=patch_train_batch, n_augmented=n_augmented, placements=patch_placements, n_detect=n_detect,
    detect_delta=detect_delta, train_split=patch_train_split, n_train=n_patch_train, folds=patch_folds,
    seed=seed, image_size=imagenet_image_size, timings=timings)
display(Markdown(f"here the patches were learned on {patches.train_source}."))

# %% mystnb={"figure": {"caption": "Some of the images the first fold's patches were learned on (none of them is evaluated with that fold's patches). Look for variety: crops, flips and colour changes.", "name": "fig-ch01-train"}}
fig = plots.image_grid(patches.train_images[0][:8], ncols=8, size=1.3)
plt.show()

# %% mystnb={"figure": {"caption": "The patches learned for the first fold, as stored (the circles are cut round when pasted; LaVAN is the square). The table below says how many images each one fools.", "name": "fig-ch01-patches"}}
fig = plots.image_grid([a[0].patch.cpu() for a in patches.attacks.values()], titles=list(patches.attacks),
                       ncols=len(patches.attacks), size=2.2)
plt.show()

# %%
report.show(patches.fooling, "How many patched images each patch fools (image x placement; rates per patched image)")

# %% mystnb={"figure": {"caption": "Share of labels changed (detected) as the top-attributed pixels of the fooled patched images are masked, beside the benign images (their Fig. 4, left). The paper detects nearly every patched image at 0.4 %: compare the patch curves with the benign one there.", "name": "fig-ch01-patch-curves"}}
fig = plots.curves(100 * imagenet.deltas, study.curve_lines(patches.curves),
                   xlabel="% of pixels masked (top positive attributions)", ylabel="% of labels changed (detected)",
                   title="Patched images", ylim=(0, 100))
plt.show()

# %%
report.show(patches.detection, f"Detection of the fooled patched images at {detect_delta:.1%} masked")
display(Markdown(study.observation(imagenet.benign, patches.results, detect_delta, f"{detect_delta:.1%} of the pixels")))

# %% tags=["nbval-check-output", "remove-cell"]
for name, e in patches.evaluated.items():
    print(f"{name}: patched {len(e.result)}, analysed {len(e.masking)}")

# %% [markdown]
# ### Where the masked pixels are (their Figs. 5 and 6)

# %% mystnb={"figure": {"caption": "A benign image and one fooled image per patch: input, positive IG map, top 0.2 % and top 2 % masked. Look at the IG maps: does the positive attribution gather on the patch, as in the paper's Figs. 5 and 6, and does masking it change the target label? The table below measures the share on the patch.", "name": "fig-ch01-patch-rows"}}
rows = [("benign", imagenet.x, imagenet.benign, 0)]
for name, e in patches.evaluated.items():
    if len(e.masking):
        rows.append((name, e.result.x_adv[e.analysed.to(e.result.x_adv.device)], e.masking, 0))
fig = plots.panel_rows(study.image_rows(imagenet.model, imagenet.masking, rows, names))
plt.show()

# %%
report.show(patches.inside, "How much of the masked evidence lies on the patch")

# %% [markdown]
# ### Patch size (their Fig. 4, right)
#
# The first patch was learned over 25–40 % of the image, so it is pasted at each size of the sweep
# (as Brown et al. evaluate one patch at several scales) at the same random places on the same
# images, and each image's first fooled placement is analysed.

# %%
sizes = study.patch_size_study(imagenet, patches, list(patches.attacks)[0], patch_sizes, n_detect,
                               timings=timings)
report.show(sizes.table, f"{sizes.name}: fooling and detection against patch size")

# %% mystnb={"figure": {"caption": "Detection of the first patch's fooled images against the share of pixels masked, one curve per patch size (their Fig. 4, right). The paper finds smaller patches easier to detect: is the smallest size's curve on top?", "name": "fig-ch01-sizes"}}
fig = plots.curves(100 * imagenet.deltas, {f"{100 * a:.0f}%": 100 * torch.tensor(res.curve(imagenet.deltas)).numpy()
                                           for a, res in sizes.results.items() if len(res)},
                   xlabel="% of pixels masked", ylabel="% of labels changed (detected)",
                   title=f"{sizes.name} by patch size", ylim=(0, 100))
plt.show()

# %% [markdown]
# ## 4. Beyond the paper: ROC, AUC and false positives
#
# The paper reports detection rates on adversarial inputs only. A detector is only useful if it
# leaves benign inputs alone, so here every setting gets its ROC curve (benign inputs are the
# negatives, the threshold on $\rho$) and, at the paper's operating points, the true-positive rate
# beside the false-positive rate on benign inputs.

# %%
roc = study.roc_study([
    ("mnist", mnist.benign, mnist.adversarial, mnist_max_delta, 0.2),
    ("imagenet", imagenet.benign, imagenet.adversarial, imagenet_max_delta, detect_delta),
    ("patches", imagenet.benign, {**patches.results, **{f"{sizes.name} {100 * a:.0f}%": r
                                                        for a, r in sizes.results.items()
                                                        if abs(a - patch_size) > 1e-9}},
     imagenet_max_delta, detect_delta)])
report.show(roc.drop(columns="_roc"), "Detection: AUC, and TPR / benign FPR at the paper's operating point")

# %% mystnb={"figure": {"caption": "ROC of the masking detector per setting (benign inputs the negatives; AUC in the legend). Curves near the top-left corner separate adversarial from benign inputs; the dashed diagonal is chance.", "name": "fig-ch01-roc"}}
fig = plots.roc_curves({s: [(row["attack"], row["_roc"]["fpr"], row["_roc"]["tpr"], row["AUC"])
                            for row in roc.to_dict("records") if row["setting"] == s]
                        for s in ("mnist", "imagenet", "patches")})
plt.show()

# %% tags=["nbval-check-output", "remove-cell"]
for row in roc.to_dict("records"):
    print(f"{row['setting']} / {row['attack']}: AUC {row['AUC']:.1f}")

# %% [markdown]
# ## 5. Paper vs this reproduction
#
# Every headline number of the paper beside ours, with its 95 % interval and the book's verdict
# (the rule is explained on the page *How a verdict is decided*). The claims and their tolerances
# are data (`advxai.studies.causal_attribution.PAPER_CLAIMS`). An attack's claim is the share of its
# adversarial images whose label changes minus the share of benign images whose label changes at the
# same masked fraction: the paper's contrast, with the benign rate's uncertainty included.

# %%
claim_records = study.paper_claims(
    mnist, imagenet, patches, sizes,
    mnist_setting=claims.Setting("MNIST", data=mnist_dataset, model=mnist_model, paper_data="mnist",
                                 paper_model="mnist_cnn"),
    imagenet_setting=claims.Setting("ImageNet", data=imagenet_dataset, model=imagenet_model,
                                    paper_data="imagenet", paper_model="inception_v3"),
    patch_setting=claims.Setting("ImageNet, Inception-v3, 1,000 images", data=imagenet_dataset,
                                 model=imagenet_model, paper_data="imagenet", paper_model="inception_v3",
                                 paper_n=1000))
report.show(claims.frame(claim_records), "Paper vs this reproduction")
display(Markdown(study.claims_summary(claim_records)))

# %% tags=["nbval-check-output", "remove-cell"]
print(claims.frame(claim_records)["verdict"].value_counts().sort_index().to_string())

# %% [markdown]
# ### Deviations from the paper, and why
#
# What this run used, beside what the paper used:

# %%
display(Markdown(study.data_deviations(mnist, imagenet, patches)))

# %% [markdown]
# And in every run:
#
# * **Short patch training.** `patch_steps` steps of `patch_train_batch` images, so the chapter
#   runs on a laptop CPU (the `paper` profile: 2,000 steps of 32).
# * **The size sweep.** One patch learned over 25–40 % and pasted at each size, not one patch per
#   size.
# * **Attack settings** the paper does not give (FGSM ε on MNIST, C&W's constant and steps, PGD's
#   steps) are the parameters above; the adversarial images are untargeted.
# * **IG steps.** The paper does not say; Gauss–Legendre quadrature is accurate with far fewer points
#   than a Riemann sum (the completeness error in section 1 measures it).
# * **The grid.** $\rho$ is searched on a grid of $\epsilon$ up to a largest fraction; an input whose
#   label never changes there has $\rho = \infty$.

# %% [markdown]
# ## Run time

# %%
report.show(timings.frame(), "Seconds per stage")
metrics_file = report.save_metrics(
    "ch01_causal_attribution", "Attribution-driven causal analysis (Jha et al.)",
    metrics=study.headline_metrics(mnist, imagenet, patches, sizes, roc),
    claims=claim_records,
    timings=timings,
    parameters={"mnist_dataset": mnist_dataset, "mnist_model": mnist_model, "n_mnist": n_mnist,
                "imagenet_dataset": imagenet_dataset, "imagenet_model": imagenet_model, "n_imagenet": n_imagenet,
                "mnist_ig_steps": mnist_ig_steps, "imagenet_ig_steps": imagenet_ig_steps,
                "patch_steps": patch_steps, "seed": seed, "train_budget": train_budget},
)
