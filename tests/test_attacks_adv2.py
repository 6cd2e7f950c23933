"""ADV² on PGD (GRAD, CAM, Grad-CAM, RTS), against MASK (bilevel), and on C&W."""
from __future__ import annotations

import pytest
import torch

from advxai import map_metrics as mm
from advxai.attacks import ADV2, ADV2CW, ADV2Mask, get_attack, list_attacks, random_targets
from advxai.attacks.adv2 import (EncoderLoss, InterpretationLoss, SmoothedCrossEntropy, adv2_settings, linear_ramp,
                                 make_adv2, piecewise)
from advxai.attacks.objectives import AttackState
from advxai.interpreters import get_interpreter

from .helpers import batch, digits_batch, tiny_classifier, trained_digits_classifier

EPS, ALPHA = 0.1, 0.01


@pytest.fixture(scope="module")
def digits():
    model = trained_digits_classifier()
    x, y = digits_batch(model, 4)
    return model, x, y, random_targets(y, 10, seed=1)


def _native(interp, x, cls):
    return interp(x, target=cls).extras["native"]


def _l_int(interp, x_adv, target, x, y):
    return (_native(interp, x_adv, target) - _native(interp, x, y)).pow(2).flatten(1).mean(1)


# --------------------------------------------------------------------------- schedules and terms


def test_schedules():
    w = piecewise([1, 2, 3], [2, 1, 1])
    assert [w(s, 8) for s in range(8)] == [1, 1, 1, 1, 2, 2, 3, 3]
    assert [w(s, 4) for s in range(4)] == [1, 1, 2, 3]
    r = linear_ramp(5, 10)
    assert r(0, 10) == pytest.approx(5.5) and r(9, 10) == pytest.approx(10)
    with pytest.raises(ValueError):
        piecewise([1, 2], [1])


def test_smoothed_cross_entropy_is_a_soft_label_cross_entropy():
    logits = torch.randn(5, 7)
    target = torch.tensor([0, 1, 2, 3, 4])
    state = AttackState(x=torch.zeros(5, 1, 2, 2), y=(target + 1) % 7, target=target, step=0, steps=10, logits=logits)
    term = SmoothedCrossEntropy(0.05, 0.01, seed=3)
    loss = term(None, state)
    ce = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    # a soft label close to one-hot: the loss is near the plain cross-entropy, and never below the
    # entropy-free bound -log p_t * (1 - rho)
    assert torch.all((loss - ce).abs() < 0.05 * (logits.abs().max() + ce.max()))
    assert torch.equal(loss, term(None, state))  # seeded per step
    state.step = 9
    assert not torch.equal(loss, term(None, state))
    # no smoothing = cross-entropy exactly
    assert torch.allclose(SmoothedCrossEntropy(0.0, 0.0)(None, state), ce, atol=1e-6)


def test_code_settings_are_the_default_and_keep_their_values():
    s = adv2_settings("grad")
    assert s["warm_steps"] == 300 and s["steps"] == 704 and s["label_smoothing"] == (0.05, 0.01)
    assert s["lam"] == ("piecewise", [0.001 * 3136, 0.004 * 3136, 0.01 * 3136, 0.05 * 3136], [301, 201, 101, 101])
    assert s["reduction"] == "mean" and s["source"].startswith("code:")
    assert adv2_settings("cam")["lam"] == ("ramp", 5.0, 10.0)
    assert adv2_settings("rts")["enc_weight"] == 0.1 and adv2_settings("rts")["lam"] == 5.0
    q = adv2_settings("mask", "quick")
    assert q["steps"] == 100 and q["warm_steps"] == 40 and "alpha_max" not in q


# Where Table 11 (ResNet column) departs from the authors' code, and nowhere else.
TABLE_11_DIFFERS = {
    "grad": {"steps": 800, "lam": 0.007, "reduction": "sum"},
    "cam": {"lam": 0.204, "reduction": "sum"},
    "gradcam": {"lam": 0.204, "reduction": "sum"},
    "rts": {"steps": 1200, "lam": 0.002, "reduction": "sum"},
    "mask": {"alpha_max": 0.08, "search_norm": "l2"},
}


@pytest.mark.parametrize("interp", sorted(TABLE_11_DIFFERS))
def test_paper_settings_differ_from_the_code_exactly_where_table_11_does(interp):
    paper, code = adv2_settings(interp, settings="paper"), adv2_settings(interp, settings="code")
    differ = {k for k in paper.keys() | code.keys() if k != "source" and paper.get(k) != code.get(k)}
    assert differ == set(TABLE_11_DIFFERS[interp])
    assert {k: paper[k] for k in differ} == TABLE_11_DIFFERS[interp]
    assert paper["source"].startswith("paper: Zhang et al., Table 11 (ResNet column)")
    assert code["source"].startswith("code:") and "paper" not in code["source"]
    # the DenseNet column differs only in RTS's lambda
    dense = adv2_settings(interp, settings="paper", architecture="densenet")
    assert {k for k in dense if dense[k] != paper[k]} == ({"lam", "source"} if interp == "rts" else {"source"})
    assert "DenseNet column" in dense["source"]


@pytest.mark.parametrize("settings", ["paper", "code"])
def test_budgets_scale_the_step_counts_of_either_settings(settings):
    for interp in TABLE_11_DIFFERS:
        full = adv2_settings(interp, "full", settings)
        for budget, scale in (("quick", 0.1), ("smoke", 0.02)):
            s = adv2_settings(interp, budget, settings)
            for key in ("warm_steps", "steps"):
                assert s[key] == max(3, round(full[key] * scale))
            assert s["source"].endswith(f"budget {budget}")
            assert {k: v for k, v in s.items() if k not in ("warm_steps", "steps", "reset_every", "source")} == \
                {k: v for k, v in full.items() if k not in ("warm_steps", "steps", "reset_every", "source")}
    with pytest.warns(DeprecationWarning, match="budget='full'"):
        old = adv2_settings("cam", "paper", settings)
    assert old == adv2_settings("cam", "full", settings)


def test_unknown_settings_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="known: grad, cam, gradcam, rts, mask"):
        adv2_settings("lime")
    with pytest.raises(ValueError, match="full, quick, smoke"):
        adv2_settings("cam", "huge")
    with pytest.raises(ValueError, match="unknown ADV² settings 'authors'; valid: paper, code"):
        adv2_settings("cam", settings="authors")
    with pytest.raises(ValueError, match="resnet, densenet"):
        adv2_settings("cam", architecture="vgg")
    model = tiny_classifier(in_channels=3, size=16)
    with pytest.raises(ValueError, match="no settings for ADV² on C&W"):
        make_adv2(model, "cam", framework="cw", settings="paper")
    with pytest.raises(ValueError, match="reduction must be one of mean, sum"):
        make_adv2(model, "cam", reduction="max")
    with pytest.raises(ValueError, match="search_norm must be one of linf, l2"):
        make_adv2(model, "mask", search_norm="l1")


def _tiny_rts(model, x):
    from advxai.interpreters.rts import RTS, RTSDecoder

    layers = ["cam", "features.2"]
    with torch.no_grad():
        _, feats = model.forward_with(x[:1], layers)
    decoder = RTSDecoder([f.shape[1] for f in feats], 10, 32)
    payload = {"state_dict": decoder.state_dict(), "history": [], "channels": [f.shape[1] for f in feats]}
    return RTS(model, layers=layers, payload=payload)


@pytest.mark.parametrize("settings", ["paper", "code"])
def test_both_settings_build_and_run_for_every_interpreter(settings):
    model = tiny_classifier(in_channels=3, size=16, width=12)
    x, y = batch(model, 2)
    t = (y + 1) % 10
    interps = {"grad": "grad", "cam": "cam", "gradcam": "gradcam", "rts": _tiny_rts(model, x), "mask": "mask"}
    for name, interp in interps.items():
        kw = dict(interpreter_settings={"iterations": 3}, reset_iterations=2) if name == "mask" else {}
        attack = make_adv2(model, interp, budget="smoke", settings=settings, **kw)
        expected = adv2_settings(name, "smoke", settings)
        assert isinstance(attack, ADV2Mask if name == "mask" else ADV2)
        assert attack.source == expected["source"] and attack.steps == expected["steps"]
        if name == "mask":
            assert (attack.alpha_max, attack.search_norm) == ((0.08, "l2") if settings == "paper" else (0.031, "linf"))
        else:
            assert attack.term.reduction == expected["reduction"]
        res = attack(x, y, t)
        assert torch.all(res.linf <= 0.031 + 1e-6) and torch.isfinite(res.x_adv).all()
    # settings alone take the full budget; explicit parameters override them
    assert make_adv2(model, "cam", settings=settings).steps == 1200
    assert make_adv2(model, "cam", settings=settings, steps=7, lam=1.0).lam == 1.0


def test_summed_interpretation_loss_is_the_mean_times_the_map_size(digits):
    model, x, y, t = digits
    cam = get_interpreter("cam", model)
    state = AttackState(x=x, y=y, target=t, logits=model(x))
    mean = InterpretationLoss(cam, "mean")(x, state)
    total = InterpretationLoss(cam, "sum")(x, AttackState(x=x, y=y, target=t, logits=model(x)))
    n = cam(x[:1], target=y[:1]).extras["native"][0].numel()
    assert n > 1 and torch.all(mean > 0)
    assert torch.allclose(total, n * mean, rtol=1e-5)
    assert torch.allclose(total, _l_int(cam, x, t, x, y) * n, rtol=1e-5)  # against a direct computation


def test_mask_search_step_is_bounded_in_the_chosen_norm(digits):
    """One iteration, a tiny prediction step and a full interpretation step (confidence 0): the step's
    length is alpha_max in L2 for search_norm='l2', its largest pixel change alpha_max for 'linf'."""
    model, x, _, _ = digits
    x = 0.25 + 0.5 * x  # mid-grey images: no pixel meets the [0, 1] bounds within eps
    with torch.no_grad():
        y = model(x).argmax(1)
    t = (y + 1) % 10
    kw = dict(interpreter_settings={"iterations": 5}, reset_iterations=3, eps=0.2, alpha=1e-3, warm_steps=0,
              steps=1, alpha_max=0.05, confidence=0.0)
    l2 = make_adv2(model, "mask", search_norm="l2", **kw)(x, y, t)
    linf = make_adv2(model, "mask", search_norm="linf", **kw)(x, y, t)
    sign_step = 1e-3 * x[0].numel() ** 0.5  # the L2 length of the prediction step
    # never longer than alpha_max; a full step on most images (an image whose target probability
    # underflows to 0, which depends on the trained weights' last bits, keeps only the prediction step)
    assert torch.all(l2.l2 <= sign_step + 0.05 + 1e-4) and torch.all(linf.linf <= 0.05 + 1e-3 + 1e-5)
    full_l2 = l2.l2 >= 0.05 - sign_step - 1e-4
    full_linf = (linf.linf - 0.05).abs() <= 1e-3 + 1e-5
    assert full_l2.sum() >= 3 and full_linf.sum() >= 3
    both = full_l2 & full_linf
    assert both.any() and torch.all(linf.l2[both] > 1.5 * l2.l2[both])  # the L-inf step moves further in L2


def test_registry():
    assert {"adv2", "adv2_cw"} <= set(list_attacks())
    model = tiny_classifier(in_channels=3, size=16)
    assert isinstance(get_attack("adv2", model, interpreter="cam"), ADV2)
    assert isinstance(get_attack("adv2", model, interpreter="mask", budget="smoke"), ADV2Mask)
    assert isinstance(get_attack("adv2_cw", model, interpreter="grad"), ADV2CW)
    attack = get_attack("adv2", model, interpreter="grad", budget="smoke")
    assert attack.steps == 14 and attack.warm_steps == 6 and callable(attack.lam)
    paper = get_attack("adv2", model, interpreter="grad", budget="smoke", settings="paper")
    assert paper.steps == 16 and paper.lam == 0.007 and paper.source.startswith("paper:")


# --------------------------------------------------------------------------- bad input


def test_bad_input_fails_before_work():
    model = tiny_classifier(in_channels=3, size=16)
    x, y = batch(model, 4)
    t = (y + 1) % 10
    with pytest.raises(ValueError, match="not differentiable"):
        ADV2(model, "ig")
    with pytest.raises(ValueError, match="not differentiable"):
        ADV2CW(model, "mask")
    with pytest.raises(ValueError, match="unknown interpreter 'lime'"):
        make_adv2(model, "lime")
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\]"):
        make_adv2(model, "cam", eps=8)
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\]"):
        make_adv2(model, "mask", eps=0)
    with pytest.raises(ValueError, match="target equals the true label"):
        make_adv2(model, "cam", steps=2, warm_steps=0)(x, y, y)
    with pytest.raises(ValueError, match="needs target"):
        make_adv2(model, "cam")(x, y)
    with pytest.raises(ValueError, match="no untargeted mode"):
        make_adv2(model, "cam", targeted=False)
    with pytest.raises(ValueError, match=r"target maps must be \[4, 1, 8, 8\].*or \[4, 1, 16, 16\]"):
        make_adv2(model, "cam", steps=2)(x, y, t, target_map=torch.zeros(4, 1, 5, 5))
    with pytest.raises(ValueError, match="target maps must be"):
        make_adv2(model, "cam", steps=2)(x, y, t, target_map=torch.zeros(3, 1, 8, 8))
    with pytest.raises(ValueError, match="applies to RTS"):
        make_adv2(model, "cam", enc_weight=0.1)
    with pytest.raises(ValueError, match="confidence"):
        make_adv2(model, "grad", confidence=1.5)
    with pytest.raises(ValueError, match="framework"):
        make_adv2(model, "grad", framework="stadv")


# --------------------------------------------------------------------------- the attacks


def test_adv2_cam_keeps_budget_reaches_target_and_beats_pgd_on_the_map(digits):
    model, x, y, t = digits
    cam = get_interpreter("cam", model)
    adv = make_adv2(model, "cam", eps=EPS, alpha=ALPHA, warm_steps=15, steps=25, lam=linear_ramp(5, 10),
                    confidence=0.5)(x, y, t)
    pgd = get_attack("pgd", model, targeted=True, eps=EPS, alpha=ALPHA, steps=40, random_start=False)(x, y, t)
    assert torch.all(adv.linf <= EPS + 1e-6) and adv.x_adv.min() >= 0 and adv.x_adv.max() <= 1
    assert torch.equal(adv.pred, t) and adv.success.all()
    assert pgd.success.all()
    l_adv, l_pgd = _l_int(cam, adv.x_adv, t, x, y), _l_int(cam, pgd.x_adv, t, x, y)
    # three of the four digits at least, and clearly on average (the margin depends on the model's last
    # bits, which depend on the thread count it was trained with)
    assert (l_adv < l_pgd).sum() >= 3 and l_adv.mean() < 0.7 * l_pgd.mean()
    assert mm.map_l1(_native(cam, adv.x_adv, t), _native(cam, x, y)).mean() < \
        mm.map_l1(_native(cam, pgd.x_adv, t), _native(cam, x, y)).mean()


def test_adv2_grad_with_label_smoothing_and_schedule(digits):
    model, x, y, t = digits
    grad = get_interpreter("grad", model, pool=2)
    attack = make_adv2(model, grad, eps=EPS, alpha=ALPHA, warm_steps=15, steps=20,
                       lam=("piecewise", [5.0, 20.0, 50.0], [2, 1, 1]), label_smoothing=(0.05, 0.01), confidence=0.5)
    adv = attack(x, y, t)
    pgd = get_attack("pgd", model, targeted=True, eps=EPS, alpha=ALPHA, steps=35, random_start=False)(x, y, t)
    assert torch.all(adv.linf <= EPS + 1e-6) and adv.x_adv.min() >= 0 and adv.x_adv.max() <= 1
    # three digits of four at least: which one resists depends on the trained weights' last bits
    # (thread count and CPU of the machine that trained the session's model)
    assert adv.success.sum() >= 3 and (adv.confidence > 0.5).float().mean() >= 0.75
    assert _l_int(grad, adv.x_adv, t, x, y).mean() < _l_int(grad, pgd.x_adv, t, x, y).mean()


def test_target_maps_are_sliced_per_batch_and_runs_repeat(digits):
    model, x, y, t = digits
    cam = get_interpreter("cam", model)
    # an arbitrary target map at input resolution: a bright square in a corner
    target_map = torch.zeros(len(x), 1, 28, 28)
    target_map[:, :, :12, :12] = 1
    kw = dict(eps=EPS, alpha=ALPHA, warm_steps=5, steps=6, lam=5.0, confidence=0.0)
    whole = make_adv2(model, cam, **kw)(x, y, t, target_map=target_map)
    parts = make_adv2(model, cam, batch_size=3, **kw)(x, y, t, target_map=target_map)
    assert torch.allclose(whole.x_adv, parts.x_adv, atol=1e-6)
    benign = make_adv2(model, cam, **kw)(x, y, t)
    assert not torch.allclose(whole.x_adv, benign.x_adv)
    # the patch target pulls the map towards the corner more than the benign target does
    corner = torch.nn.functional.adaptive_avg_pool2d(target_map, (7, 7))
    d_patch = (_native(cam, whole.x_adv, t) - corner).pow(2).mean()
    d_benign = (_native(cam, benign.x_adv, t) - corner).pow(2).mean()
    assert d_patch < d_benign


def test_interpretation_loss_on_a_tiny_gap_model_decreases_from_warm_start():
    model = tiny_classifier(in_channels=3, size=16, width=12)
    x, y = batch(model, 6)
    t = (y + 3) % 10
    cam = get_interpreter("cam", model)
    attack = make_adv2(model, cam, eps=0.05, alpha=0.005, warm_steps=10, steps=30, lam=20.0, confidence=0.0,
                       keep="last")
    warm = attack.warm_start(x, y, t)
    after = attack(x, y, t)
    pgd = get_attack("pgd", model, targeted=True, eps=0.05, alpha=0.005, steps=40, random_start=False)(x, y, t)
    l_warm, l_after = _l_int(cam, warm, t, x, y), _l_int(cam, after.x_adv, t, x, y)
    assert l_after.mean() < 0.7 * l_warm.mean()
    assert l_after.mean() < _l_int(cam, pgd.x_adv, t, x, y).mean()
    assert torch.all(after.linf <= 0.05 + 1e-6)


def test_encoder_loss_and_rts_attack_run():
    from advxai.interpreters.rts import RTS, RTSDecoder

    model = tiny_classifier(in_channels=3, size=16, width=12)
    x, y = batch(model, 3)
    t = (y + 1) % 10
    layers = ["cam", "features.2"]
    with torch.no_grad():
        _, feats = model.forward_with(x[:1], layers)
    decoder = RTSDecoder([f.shape[1] for f in feats], 10, 32)
    payload = {"state_dict": decoder.state_dict(), "history": [], "channels": [f.shape[1] for f in feats]}
    rts = RTS(model, layers=layers, payload=payload)
    state = AttackState(x=x, y=y, target=t, logits=model(x))
    assert torch.allclose(EncoderLoss(rts)(x, state), torch.nn.functional.cross_entropy(model(x), t, reduction="none"))
    res = make_adv2(model, rts, eps=0.05, alpha=0.005, warm_steps=3, steps=4, lam=5.0, enc_weight=0.1,
                    confidence=0.0)(x, y, t)
    assert torch.all(res.linf <= 0.05 + 1e-6) and torch.isfinite(res.x_adv).all()
    assert any(isinstance(term, EncoderLoss) for _, term in make_adv2(model, rts, enc_weight=0.1).objective.terms)


def test_adv2_against_mask_bilevel(digits):
    model, x, y, t = digits
    settings = dict(iterations=40)
    attack = make_adv2(model, "mask", interpreter_settings=settings, eps=EPS, alpha=ALPHA, warm_steps=15, steps=8,
                       reset_every=4, reset_iterations=15, confidence=0.5)
    adv = attack(x, y, t)
    assert torch.all(adv.linf <= EPS + 1e-6) and adv.x_adv.min() >= 0 and adv.x_adv.max() <= 1
    assert adv.success.float().mean() >= 0.75
    assert max(attack.step_sizes) > 0  # the searched interpretation step moved
    pgd = get_attack("pgd", model, targeted=True, eps=EPS, alpha=ALPHA, steps=23, random_start=False)(x, y, t)
    mask = get_interpreter("mask", model, **settings)
    benign = _native(mask, x, y)
    d_adv = mm.map_l1(_native(mask, adv.x_adv, t), benign)
    d_pgd = mm.map_l1(_native(mask, pgd.x_adv, t), benign)
    assert d_adv.mean() < d_pgd.mean()


def test_adv2_on_cw_keeps_range_and_lowers_the_map_distance(digits):
    model, x, y, t = digits
    cam = get_interpreter("cam", model)
    kw = dict(c=1.0, steps=60, binary_search_steps=2, lr=0.05)
    plain = get_attack("cw", model, targeted=True, **kw)(x, y, t)
    adv = get_attack("adv2_cw", model, interpreter="cam", lam=20.0, keep="objective", **kw)(x, y, t)
    assert adv.x_adv.min() >= 0 and adv.x_adv.max() <= 1
    assert torch.all(adv.pred[adv.success] == t[adv.success]) and adv.success.any()
    both = adv.success & plain.success
    assert both.any()
    l_adv = _l_int(cam, adv.x_adv, t, x, y)[both]
    l_plain = _l_int(cam, plain.x_adv, t, x, y)[both]
    assert l_adv.mean() < l_plain.mean()
