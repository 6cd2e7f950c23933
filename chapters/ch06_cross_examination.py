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
# # Cross-examination: every attack against every detector and defense
#
# Each of the five papers tests its own attack or defense against a few chosen opponents. Jha et
# al. test IG masking against FGSM, PGD, C&W, DeepFool and patches; Brama & Grinshpoun test heat and
# blur against C&W, L-BFGS and Boundary; Zhang et al. test ADV² against feature squeezing and
# their own AID; Abdukhamidov et al. test AdvEdge against a detector that reads several
# interpreters; Gulshad et al. look at what an attack does to the attributes SJE predicts. None
# puts them all in one arena. This chapter does: **the same images, the same model, every attack
# of the study against every detector and defense**, with each detector's threshold set on benign
# images at one stated false-positive rate, so the numbers can be compared across papers.
#
# Two questions the papers raise but cannot answer alone:
#
# * **Does an interpretation-aware attack evade the attribution-based detectors?** ADV² and
#   AdvEdge make one interpreter's map of the adversarial image look benign. IG masking reads IG,
#   the multi-interpreter detector reads GRAD and CAM, heat and blur reads LRP: do they still see
#   the attack?
# * **Does heat and blur remove ADV²'s effect?** ADV² keeps the interpretation benign-looking; heat
#   and blur keeps the pixels its LRP map finds relevant and blurs the rest.
#
# The chapter states its answers as claims beside the papers', and ends with the book's summary:
# every headline claim of the five papers, as each chapter measured it, with its verdict.
#
# **How to read the matrix.** A row is an attack, a column a detector or a defense. For a
# *detector* the cell is its **detection rate**: the share of the attack's successful adversarial
# images it flags, at a threshold that flags `fpr` of benign calibration images (the `benign` row
# shows the false-positive rate it then has on the attacked images' clean versions). For a
# *defense* the cell is its **robust accuracy**: the share of attacked images it labels correctly
# (the `benign` row: its clean accuracy). Outlined cells are adaptive attacks against the member
# they were built to evade.

# %% tags=["parameters"]
device = "auto"  # auto | cpu | cuda | cuda:N
seed = 0
threads = 0  # torch CPU threads (0: leave torch's default)
engine = "local"  # local | ray: where per-image work runs
ray_address = "auto"  # with the ray engine: the cluster's head, or auto
shard_size = None  # images per shard (None: one shard per job)
train_budget = "full"  # full | smoke: the embedded models' training budget
dataset = "shapes"
model = "shapes_resnet"  # the attacked classifier
extractor_model = "shapes_densenet"  # frozen features of the multi-interpreter detector
n_images = 16  # attacked test images (correctly classified, stratified)
n_calibration = 64  # other benign test images that set every threshold
fpr = 0.05  # benign false-positive rate of every detector
eps = 0.031  # L-inf budget of every L-inf attack (8/255, ADV²'s)
attack_budget = "quick"  # smoke | quick | paper: step counts of every attack
adv2_settings = "paper"  # paper | code: ADV² as in Tables 11-12 or in the authors' code
adv2_warm_steps = None  # plain PGD steps before every ADV² row but MASK's; None: attack_budget's
adv2_steps = None  # ADV² steps of those rows; None: attack_budget's
arena_rows = ["fgsm", "pgd", "cw", "deepfool", "lbfgs", "boundary", "stadv", "patch", "lavan",
              "adv2_cam", "adv2_grad", "adv2_mask", "adv2_rts", "advedge_cam", "advedge_plus_cam",
              "adaptive_adv2_fs", "adaptive_hb", "adv2_rts_aid", "adaptive_aid", "pgd_at"]
arena_members = ["ig_masking", "feature_squeezing", "heat_and_blur_change", "multi_interpreter",
                 "sje_disagreement", "aid", "undefended", "heat_and_blur", "adversarial_training"]
ig_steps = 16  # IG quadrature points of the masking detector
ig_epsilon = 0.002  # its grid of masked fractions (of the positive pixels)
ig_max_delta = 0.1
fs_squeezer = "median_3x3"  # feature squeezing's squeezer (the one adaptive ADV² evades)
sqz_weight = 10.0  # weight of adaptive ADV²'s squeezer term
hb_sigma = 1.0  # heat and blur's Gaussian
hb_iterations = 3  # Algorithm 2's rounds
mask_images = 4  # ADV² vs MASK (the costly bilevel attack) on the first images only
mask_iterations = 60  # MASK's own Adam iterations (chapter 3's quick setting; paper: 300)
mask_steps = 4  # bilevel iterations against MASK (paper: 1000)
mask_warm_steps = 20  # plain targeted PGD steps first (paper: 400)
mask_reset_every = 2  # recompute MASK every so many iterations (paper: 50)
mask_reset_iterations = 20  # Adam iterations of each recomputation
rts_steps = None  # RTS decoder steps; None: the train_budget's (chapter 3's decoder)
rts_batch = None
aid_budget = "full"  # AID distillation of that decoder: full | smoke
aid_batch = None  # images per AID batch; None: the budget's
aid_rounds = None  # AID rounds; None: the budget's
aid_match_weight = 10.0  # adaptive ADV² vs AID: weight of the RTS/RTS^A map distance
mi_interpreters = ["grad", "cam"]  # maps the multi-interpreter detector reads
mi_training_set = "pgd"  # the attack whose images train the multi-interpreter detector
mi_n_train = 96  # its training images (benign, and attacked by mi_training_set)
sje_n_train = 1000  # training images of the SJE detector
sje_epochs = 5
at_eps = 0.025  # the adversarially trained model (chapter 5's settings and cached model)
at_steps = 5
at_epochs = 3
at_n_train = 2000

# %%
import os

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import HTML, Markdown, display

import advxai.engine
from advxai import arena, claims, report, runner, summary
from advxai.runtime import seed_everything

if threads:
    torch.set_num_threads(threads)
seed_everything(seed)
advxai.engine.configure(engine, address=ray_address, shard_size=shard_size)
timings = report.Timings()

# %% [markdown]
# ## Setup: one model, one set of images
#
# The attacked images are test images the model classifies correctly, drawn at random by `seed`
# and stratified over classes, as the papers draw theirs; the calibration images are other test
# images (correct or not, as benign inputs come), never attacked. Every attack and every member
# sees the same images and the same model. Members the data cannot support are left out, with
# the reason.

# %%
with timings("setup"):
    setup = arena.prepare(dataset, model, n_images=n_images, n_calibration=n_calibration, seed=seed,
                          device=device, train_budget=train_budget)
    members_run, rows_run, members_dropped = arena.available_members(setup, arena_members, arena_rows)
print(f"device: {setup.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
report.show(arena.setting_frame(setup, fpr, eps), "The arena's setting")
report.glue("ch06_n_images", len(setup.attacked))
for name, why in members_dropped.items():
    print(f"left out: {arena.LABELS[name]} ({why})")

# %% [markdown]
# ## 1. The attacks
#
# Every attack of the study, by name (`advxai.arena.study_attacks`): the gradient attacks FGSM and
# PGD, the optimisation attacks C&W (L2), DeepFool (L2) and L-BFGS (targeted), the decision-based
# Boundary attack, the spatial StAdv, the universal adversarial patch (a circle over 25 % of the
# image) and LaVAN (a small square), ADV² against CAM, GRAD, MASK (the bilevel attack, on the first
# `mask_images` images) and RTS, and AdvEdge and AdvEdge+ (ADV² on CAM with its steps weighted by,
# or restricted to, the image's Sobel edges). ADV², AdvEdge, L-BFGS and the patches are targeted
# (random targets; one target class for a universal patch), the others untargeted; every ADV² row
# starts from the `adv2_settings` printed below. The adaptive rows: **ADV² adapted to feature
# squeezing** (Zhang et al.'s Algorithm 2: the squeezer's disagreement joins the objective), **PGD
# inside heat and blur's Algorithm 2** (the perturbation kept on the pixels the defense restores),
# **ADV² against RTS^A** (the attacker knows AID's decoder), **adaptive ADV² vs AID** (it also pulls
# the RTS and RTS^A maps together, the AID detector's score) and **PGD against the adversarially
# trained model** itself. Every row is a map over shards of the images on the chapter's engine,
# cached per shard, so a re-execution or another chapter asking for the same set loads it.

# %%
specs = arena.study_attacks(
    attack_budget, eps=eps, num_classes=setup.net.info.num_classes, seed=seed, squeezer=fs_squeezer,
    sqz_weight=sqz_weight, hb_iterations=hb_iterations, hb_sigma=hb_sigma,
    mask=dict(steps=mask_steps, warm_steps=mask_warm_steps, reset_every=mask_reset_every,
              reset_iterations=mask_reset_iterations,
              interpreter_settings={"iterations": mask_iterations, "seed": seed}),
    mask_images=mask_images, rts_steps=rts_steps, rts_batch=rts_batch, aid_budget=aid_budget,
    aid_match_weight=aid_match_weight, aid_batch=aid_batch, aid_rounds=aid_rounds,
    adv2_warm_steps=adv2_warm_steps, adv2_steps=adv2_steps,
    robust=dict(eps=at_eps, steps=at_steps, epochs=at_epochs, n_train=at_n_train, seed=seed),
    adv2_settings=adv2_settings)
print("ADV² settings:", arena.adv2_source(specs))
attacks = arena.run_attacks(setup, specs, rows_run, timings=timings)
report.show(attacks.table, f"The attacks on {model} ({len(setup.attacked)} images; the patches skip "
            "images of their target class)")

# %% tags=["nbval-check-output", "remove-cell"]
for name, r in attacks.results.items():
    print(f"{name}: {int(r.success.sum())}/{len(r)} successful")

# %% [markdown]
# ## 2. The detectors and defenses
#
# | member | paper (chapter) | score or label | fitted on |
# | --- | --- | --- | --- |
# | IG masking | Jha et al. (1) | −ρ: the smallest masked fraction of top positive IG pixels that flips the label | benign calibration images |
# | feature squeezing | Xu et al., used by Zhang et al. (3) | L1 between softmax of x and of its squeezed version | benign calibration images |
# | heat-and-blur change | Brama & Grinshpoun (2), as a detector | L1 between softmax of x and of its heat-and-blurred version | benign calibration images |
# | multi-interpreter | Abdukhamidov et al. (4) | gradient boosting on frozen features of stacked GRAD and CAM maps | `mi_n_train` training images and their PGD versions; threshold on the calibration images |
# | SJE disagreement | new, from Gulshad et al. (5) | how much more SJE prefers its own class than the softmax's label, on the same features | benign calibration images |
# | AID | Zhang et al. (3) | per-pixel L1 between the RTS map (AID's control) and the RTS^A map (RTS distilled with AID) of the predicted class | benign calibration images |
# | undefended | — | the model's label | — |
# | heat and blur | Brama & Grinshpoun (2) | the label of the heat-and-blurred image | — |
# | adversarial training | Madry et al., used by Gulshad et al. (5) | the label given by a PGD-trained copy of the model | — |
#
# The multi-interpreter detector is the only supervised one: it learns what adversarial maps look
# like from one attack (`mi_training_set`) and is then asked about every other attack, which is
# how it would be used against an attack it has not seen. The adversarially trained model labels
# images crafted against the plain model (a transfer setting) in every row but one: *PGD vs adv.
# training* is crafted against the adversarially trained model itself, the white-box attack on
# that defense. (Its images are counted as successful when they fool the robust model, and the
# other columns see how they fare against the plain model.)
#
# AID is a training method for an interpreter, not a detector; Zhang et al. show that RTS^A, the
# distilled decoder, draws almost the same maps as RTS on benign inputs and different ones on ADV²
# inputs. The detector used here compares the two maps of the predicted class (per-pixel L1). A
# briefly trained decoder still changes under AID's extra RTS-loss steps, so the RTS it compares
# with is AID's control, as in chapter 3: the same decoder trained by the same schedule with the
# AID term switched off. The two then differ only by what the AID term did.

# %%
settings = arena.member_settings(
    setup, members_run, fs_squeezer=fs_squeezer, hb_sigma=hb_sigma, ig_epsilon=ig_epsilon,
    ig_max_delta=ig_max_delta, ig_steps=ig_steps, mi_interpreters=mi_interpreters,
    extractor_model=extractor_model, sje_n_train=sje_n_train, sje_epochs=sje_epochs, rts_steps=rts_steps,
    rts_batch=rts_batch, aid_budget=aid_budget, at_eps=at_eps, at_steps=at_steps, at_epochs=at_epochs,
    at_n_train=at_n_train, aid_batch=aid_batch, aid_rounds=aid_rounds)
members = arena.build_arena(setup, specs, members_run, fpr=fpr, settings=settings,
                            mi_training_set=mi_training_set, mi_n_train=mi_n_train, timings=timings)
report.show(members.table, f"Members, thresholds set at {fpr:.0%} of the benign calibration images")
result = arena.evaluate(members, attacks, setup, timings=timings)
records = result.records

# %% [markdown]
# ## 3. The matrix

# %% mystnb={"figure": {"caption": "The arena: a row per attack, a column per detector (left of the vertical line: detection rate of the attack's successful images at the stated benign false-positive rate) or defense (right: robust accuracy on every attacked image). Green is good for the defender. The benign row holds each detector's false-positive rate and each defense's clean accuracy; outlined cells are adaptive attacks against the member they were built to evade. Look down a column for the attacks a member misses, and along a row for the members an attack gets past.", "name": "fig-ch06-matrix"}}
fig = arena.plot_matrix(records, f"{model}: detection rate at {fpr:.0%} benign FPR | robust accuracy")
plt.show()

# %%
report.show(result.table.reset_index(), "The arena (detectors: detection rate of successful adversarial "
            "images; defenses: robust accuracy; benign row: false-positive rate / clean accuracy)", precision=2)
report.show(result.auc.reset_index(), "Detectors: ROC AUC of adversarial against benign scores "
            "(threshold-free)", precision=2)

# %% tags=["nbval-check-output", "remove-cell"]
print(f"{len(attacks.results)} attacks x {len(members.members)} members = "
      f"{len(records) - len(members.members)} cells")
print("adversarial images per row:",
      {a: int(n) for a, n in records.drop_duplicates("attack").set_index("attack")["n"].items()})

# %% [markdown]
# ## 4. What the matrix shows
#
# The numbers below are computed from the matrix above: the families of attacks compared per
# detector, the interpretation-aware attacks against the attribution-based detectors, and heat
# and blur against ADV².

# %%
reading = arena.read_matrix(result, attacks, members)
report.show(reading.family_table, "By family of attack (means weighted by the number of images)", precision=2)
if len(reading.heat_and_blur):
    report.show(reading.heat_and_blur, "Heat and blur on the successful adversarial images: is the attack's effect "
                "removed?", precision=2)
for line in reading.observations:
    print("-", line)

# %% [markdown]
# ### The chapter's claims
#
# The two questions of this chapter, and what the papers say of their defenses against an attacker
# who knows them, as claims (the table `advxai.arena.PAPER_CLAIMS`). The papers give no number for
# this setting, so each claim is an inequality on a difference of rates (for example "detection
# rate of ADV² minus that of PGD < 0"), and its verdict follows the book's one rule
# ([how a verdict is decided](verdicts.md)): *reproduced* when the whole 95 % interval lies on the
# paper's side, *inconclusive* when it straddles 0. One image appears in many cells, so the
# interval is a bootstrap over the attacked images, each drawn with all its cells.
# Attribution-based detectors are those that read a map: IG masking (IG), heat-and-blur change
# (LRP), the multi-interpreter detector (GRAD and CAM) and AID (RTS).

# %%
labels, L = arena.LABELS, attacks.labels
sec_matrix, sec_reading = summary.anchor("3. The matrix"), summary.anchor("4. What the matrix shows")
setting = claims.Setting("ImageNet, ResNet-50 (the papers' common ground)", data=dataset, model=model,
                         paper_data="imagenet", paper_model="resnet50", paper_n=1000,
                         detail=f"{len(setup.attacked)} images, FPR {fpr:.0%}")
own_claims = arena.cross_claims(
    records, universe=setup.attacked, setting=setting, aware=reading.aware, seed=seed,
    attribution_detectors=[labels[k] for k in ("ig_masking", "heat_and_blur_change",
                                               "multi_interpreter", "aid") if k in members_run],
    adv2=[L[k] for k in ("adv2_cam", "adv2_grad", "adv2_mask", "adv2_rts")],
    adaptive=[(row, base, labels[m]) for row, (m, base) in attacks.adaptive_to.items()
              if m in members_run],
    pgd=L["pgd"], heat_and_blur=labels["heat_and_blur"], undefended=labels["undefended"],
    aid=labels["aid"], adv2_rts=L["adv2_rts"],
    sections={"aware": sec_reading, "heat_and_blur": sec_reading, "aid": sec_matrix,
              "adaptive": sec_matrix})
report.show(claims.frame(own_claims), "This chapter's claims", precision=2)

# %% tags=["nbval-check-output", "remove-cell"]
print([c.verdict for c in own_claims])

# %% [markdown]
# ### The rows and columns chapter 3 and chapter 5 add
#
# ADV² against MASK and RTS, the AID detector with its two adaptive attacks, and adversarial training
# against the white-box attack on it. The paragraph below is written from this run's matrix.

# %%
display(Markdown(arena.extra_rows_text(result, attacks, members)))

# %% [markdown]
# **Reading it.** ADV² and AdvEdge constrain only the map of the interpreter they attack (CAM or
# GRAD); IG masking asks how few IG-ranked pixels carry the decision, and the multi-interpreter
# detector reads GRAD and CAM together, so an attack that keeps CAM benign can still leave GRAD
# changed. Heat and blur restores the LRP-relevant pixels and blurs the others: whether ADV²'s
# small, spread perturbation survives depends on how much of it lies on those pixels. An adaptive
# row is read in its outlined cell, against the attack it extends. Each cell rests on at most
# {glue:text}`ch06_n_images` images, so a difference of one or two images is noise: the intervals
# of the claims above say how much.

# %% [markdown]
# ## 5. The book's summary: every headline claim
#
# Each chapter writes its claims (the paper's number or inequality, ours, `n`, the 95 % interval,
# the verdict and the section that measured it) to its `metrics.json`. The table collects them from
# the folder this chapter runs in; a chapter that has not run there is listed as *not run* with the
# command that runs it. How each verdict is reached, from the interval, the tolerance and the
# no-effect reference, is on the page [how a verdict is decided](verdicts.md).

# %%
this = "ch06_cross_examination"
chapters = [c for c in runner.list_chapters() if c != this]
folder, profile = report.book_dir(), os.environ.get("ADVXAI_PROFILE", "quick")
with timings("summary"):
    every = summary.collect_claims(folder, chapters, profile=profile)
    status = summary.chapter_status(folder, chapters, profile=profile)
# this chapter's own claims join the papers' (their links point into this page)
every = pd.concat([every, pd.DataFrame(summary.claim_rows(this, own_claims))], ignore_index=True)
display(Markdown(summary.trust_paragraph(every)))

# %%
report.show(status.drop(columns=["command"]) if (status["status"] == "run").all() else status,
            "Chapters found beside this one")
display(HTML(summary.to_html(every, "Every headline claim, with n, its 95 % interval and its verdict "
                             "(the chapter column links to the section)")))
counts = summary.verdict_counts(every)
print("verdicts:", counts)
missing = status[status.status == summary.NOT_RUN]
if len(missing):
    print("not run here:", ", ".join(missing.chapter), "- run them first, e.g.",
          missing.command.iloc[0])

# %% [markdown]
# ## 6. Conclusions (first what this run measured, read off the matrix; then what it means)

# %%
conclusions = arena.conclusions(result, members, fpr)
display(Markdown("\n".join(f"* {line}" for line in conclusions)))

# %% [markdown]
# * **One scale for every detector.** Each paper reports its detector at its own operating point
#   (Jha et al. at a masked fraction, Zhang et al. at feature squeezing's threshold, Abdukhamidov et
#   al. as balanced accuracy); here every detector flags the same share of benign images, and the
#   benign row shows the rate each actually pays on the attacked images' clean versions.
# * **Interpretation-aware attacks against detectors that read maps.** An attack that steers one
#   interpreter leaves the others free; the claims of section 4 say, per detector and with an
#   interval, whether ADV² and AdvEdge are flagged less than PGD.
# * **Defenses that relabel.** The table of section 4 says how often heat and blur gives back the
#   true label on ADV² and AdvEdge images, and how often the attacker's target survives.
# * **Adaptive attacks.** An attacker who knows the member is compared, in the outlined cells, with
#   the attack the adaptive one extends; the claims say which gains are larger than the noise.
#
# ### Deviations and limits
#
# * **Data and model.** The book's run uses one embedded model (`shapes_resnet` on the synthetic
#   shapes) and {glue:text}`ch06_n_images` attacked images; the `paper` profile runs the arena on
#   ImageNet with a torchvision ResNet-50 (the model the ADV², AdvEdge and heat-and-blur papers
#   share), 500 images drawn by `sample_correct`, a VGG16 for the multi-interpreter detector's
#   features (the AdvEdge paper's) and the attacks' full step counts.
# * **SJE needs attributes.** The SJE detector predicts class attribute vectors; ImageNet has none,
#   so on ImageNet its column is left out (the setup cell says so) rather than given made-up ones.
# * **Attacks.** One L-inf budget (8/255) where an attack has one; C&W, DeepFool, L-BFGS, Boundary
#   and StAdv are minimum-perturbation attacks without it. ADV² takes the paper's settings
#   (`adv2_settings`, Tables 11 and 12) at the quick budget's shortened schedules; ADV² against
#   MASK runs `mask_steps` bilevel iterations on the first `mask_images` images only.
# * **Detectors.** The multi-interpreter detector is trained on one attack (PGD) and judged on all;
#   the paper trains and tests on the same attack. AID is measured as a detector Zhang et al. do
#   not build (they show RTS^A's maps of ADV² inputs differ, Fig. 16): the RTS/RTS^A map distance,
#   against AID's control (the same schedule without the AID term), from a briefly trained decoder.
# * **Defenses.** The adversarially trained model sees transferred images in every row but its own
#   white-box row. The adversarial patch keeps Brown et al.'s 25 % of the image, which on small
#   images also occludes much of the object, so robust accuracy against it also measures occlusion.

# %%
report.show(timings.frame(), "Run time: seconds per stage")
metrics_file = report.save_metrics(
    this, "Cross-examination: every attack against every detector and defense",
    metrics={
        "matrix": result.to_dict("table"),
        "auc": result.to_dict("auc"),
        "success_rates": {name: r.success_rate for name, r in attacks.results.items()},
        "families": reading.family_table.set_index("family").to_dict(orient="index"),
        "heat_and_blur_on_adv2": reading.heat_and_blur_rows,
        "observations": reading.observations,
        "conclusions": conclusions,
        "summary_verdicts": counts,
        "chapters_missing": list(missing.chapter),
        "members_left_out": members_dropped},
    claims=own_claims,
    timings=timings,
    parameters={"model": model, "dataset": dataset, "n_images": n_images, "n_calibration": n_calibration,
                "fpr": fpr, "eps": eps, "attack_budget": attack_budget, "adv2_settings": adv2_settings,
                "arena_rows": rows_run, "arena_members": members_run, "seed": seed,
                "train_budget": train_budget})
