"""ADV² against MASK on C&W and StAdv: the look-ahead term, the two attacks, their settings and dispatch."""
from __future__ import annotations

import pytest
import torch

from advxai.attacks import make_adv2, make_adv2_stadv, random_targets
from advxai.attacks.adv2 import ADV2Mask
from advxai.attacks.mask_lookahead import (ADV2MaskCW, ADV2MaskStAdv, MaskLookaheadLoss, adv2_mask_stadv_settings,
                                           make_adv2_mask)
from advxai.attacks.objectives import AttackState
from advxai.interpreters import INTERPRETERS

from .helpers import digits16, small_digits_cnn


@pytest.fixture(scope="module")
def model():
    return small_digits_cnn()


@pytest.fixture(scope="module")
def images(model):
    x, y = digits16("test")
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    x, y = x[ok][:6], y[ok][:6]
    return x, y, random_targets(y, 10, 0)


def test_lookahead_matches_the_pgd_bilevel_attack(model, images):
    """The term's l_int and its gradient are those of ADV2Mask's look-ahead from the same mask, Adam state,
    translations and target maps (the two share the algorithm; the term only returns the graph)."""
    x, y, t = images
    mask = INTERPRETERS.get("mask", model, iterations=10)
    term = MaskLookaheadLoss(mask, n_step=2, reset_every=5, seed=3)
    state = AttackState(x=x, y=y, target=t, steps=10)
    xa = (x + 0.02 * torch.rand(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    xa.requires_grad_(True)
    state.logits = model(xa)
    term(xa, state)  # the follower's first moves (a reset, then n_step Adam steps)
    m, adam = state.cache["mask_m"], state.cache["mask_adam"]
    assert adam.t == 2 and m.shape == (len(x), 1, mask.mask_size, mask.mask_size)
    l_int = term(xa, state)  # the same step: the follower stays, the look-ahead is recomputed
    assert state.cache["mask_adam"].t == 2
    grad, = torch.autograd.grad(l_int.sum(), xa)

    ref = ADV2Mask(model, mask, n_step=2, steps=1)
    ref._t_native = state.cache["mask_target"]
    shifts = mask.shifts(2, seed=3 * 1_000_003 + 1)
    l_ref, g_ref = ref._lookahead(xa.detach(), m, adam, t, shifts)
    torch.testing.assert_close(l_int.detach(), l_ref)
    torch.testing.assert_close(grad, g_ref)
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()


def test_lookahead_needs_mask_and_sane_settings(model):
    with pytest.raises(ValueError, match="attacks MASK"):
        MaskLookaheadLoss(INTERPRETERS.get("cam", model))
    mask = INTERPRETERS.get("mask", model, iterations=5)
    for kw in ({"n_step": 0}, {"reset_every": 0}, {"reset_iterations": 0}, {"reduction": "max"}):
        with pytest.raises(ValueError):
            MaskLookaheadLoss(mask, **kw)


@pytest.mark.parametrize("cls,kw", [(ADV2MaskCW, dict(c=1.0, lr=0.05, binary_search_steps=1)),
                                    (ADV2MaskStAdv, dict(lr=0.05))])
def test_attacks_run_and_report_honestly(model, images, cls, kw):
    x, y, t = images
    mask = INTERPRETERS.get("mask", model, iterations=8)
    res = cls(model, mask, lam=10.0, n_step=2, reset_every=4, steps=12, **kw)(x, y, t)
    assert res.x_adv.shape == x.shape and res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    with torch.no_grad():
        pred = model(res.x_adv).argmax(1)
    assert torch.equal(res.success, pred == t)  # success means the target was reached
    assert res.success.any()


def test_stadv_term_pulls_the_mask_map_towards_the_benign_one(model, images):
    """With the term, MASK's map of the adversarial input (target class) lies closer to the benign map
    (true class) than without it (measured: mean L1 0.47 with lam = 100 against 0.57 with lam = 0)."""
    x, y, t = images
    mask = INTERPRETERS.get("mask", model, iterations=20)
    benign = 1 - mask.optimise(x, y)[0]
    dist = {}
    for lam in (0.0, 100.0):
        res = ADV2MaskStAdv(model, mask, lam=lam, n_step=2, reset_every=10, steps=30, lr=0.05)(x, y, t)
        assert res.success.float().mean() >= 0.8
        adv = 1 - mask.optimise(res.x_adv, t)[0]
        dist[lam] = (adv - benign).abs().mean((1, 2, 3))[res.success].mean().item()
    assert dist[100.0] < dist[0.0] - 0.03, dist


def test_empty_edge_mask_fails_without_changing_the_image(model, images):
    x, y, t = images
    mask = INTERPRETERS.get("mask", model, iterations=4)
    none = torch.zeros(len(x), 1, *x.shape[-2:])
    with pytest.warns(UserWarning, match="no pixel"):
        res = ADV2MaskStAdv(model, mask, lam=1.0, n_step=1, reset_every=2, steps=3, step_mask=none)(x, y, t)
    assert not res.success.any() and res.extras["mask_empty"].all()
    torch.testing.assert_close(res.x_adv, x)


def test_factories_dispatch_mask_and_take_table_12(model):
    assert isinstance(make_adv2(model, "mask", framework="cw", steps=3), ADV2MaskCW)
    assert isinstance(make_adv2_stadv(model, "mask", steps=3), ADV2MaskStAdv)
    full = adv2_mask_stadv_settings("full")
    assert {k: full[k] for k in ("steps", "n_step", "reset_every", "lam", "tau")} == \
        {"steps": 1000, "n_step": 4, "reset_every": 50, "lam": 500.0, "tau": 0.004}
    assert adv2_mask_stadv_settings("full", architecture="densenet")["tau"] == 0.005
    quick = adv2_mask_stadv_settings("quick")
    assert quick["steps"] == 100 and quick["reset_every"] == 5
    attack = make_adv2_stadv(model, "mask", settings="paper", budget="quick")
    assert attack.steps == 100 and attack.term.reset_every == 5 and attack.lam == 500.0
    with pytest.raises(ValueError, match="no settings for ADV² on C&W"):
        make_adv2(model, "mask", framework="cw", settings="paper")
    with pytest.raises(ValueError, match="valid: paper"):
        adv2_mask_stadv_settings("full", settings="code")
    with pytest.raises(ValueError, match="framework"):
        make_adv2_mask(model, "mask", framework="pgd")
    warm = make_adv2_mask(model, "mask", framework="cw", edge_placement="warm_start", steps=10)
    assert warm.mask_steps == 3  # no warm-start stage: the first 30 % of the steps
