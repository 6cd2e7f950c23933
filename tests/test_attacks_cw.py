"""Carlini & Wagner L2: against foolbox's implementation, and as a framework (terms, step mask, keep).

Tolerance against foolbox: the two run the same algorithm (tanh space, Adam, binary search over c)
in different arithmetic order, so iterates drift apart by float rounding only; we ask for the same
successes and per-image L2 norms within 2 % (+ 1e-3).
"""
import foolbox as fb
import pytest
import torch

from advxai.attacks import CW, AttackState, get_attack, margin

from .helpers import batch, digits_batch, small_digits_mlp, tiny_classifier


@pytest.fixture(scope="module")
def model():
    return tiny_classifier(in_channels=3, size=16, width=12)


@pytest.fixture(scope="module")
def mlp():
    return small_digits_mlp()


def _foolbox_cw(model, x, y, targets=None, **kw):
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    attack = fb.attacks.L2CarliniWagnerAttack(**kw)
    criterion = y if targets is None else fb.criteria.TargetedMisclassification(targets)
    raw, _, success = attack(fmodel, x, criterion, epsilons=None)
    return raw, success


def _close(ours, raw, x, success):
    theirs = (raw - x).flatten(1).norm(dim=1)
    assert torch.equal(ours.success, success)
    ok = ours.success
    assert torch.all((ours.l2[ok] - theirs[ok]).abs() <= 0.02 * theirs[ok] + 1e-3), (ours.l2, theirs)


def test_cw_untargeted_matches_foolbox(mlp):
    x, y = digits_batch(mlp, 8)
    ours = CW(mlp, c=0.1, steps=40, binary_search_steps=3, lr=0.05, abort_early=False)(x, y)
    raw, success = _foolbox_cw(mlp, x, y, binary_search_steps=3, steps=40, stepsize=0.05, initial_const=0.1,
                               abort_early=False)
    assert ours.success.float().mean() > 0.5
    _close(ours, raw, x, success)


def test_cw_targeted_with_confidence_matches_foolbox(mlp):
    x, y = digits_batch(mlp, 8)
    t = (y + 1) % 10
    ours = CW(mlp, c=1.0, kappa=0.5, steps=40, binary_search_steps=3, lr=0.05, abort_early=False,
              targeted=True)(x, y, t)
    raw, success = _foolbox_cw(mlp, x, y, t, binary_search_steps=3, steps=40, stepsize=0.05, initial_const=1.0,
                               confidence=0.5, abort_early=False)
    assert ours.success.float().mean() > 0.5
    _close(ours, raw, x, success)


def test_cw_targeted_reaches_target_with_margin(mlp):
    x, y = digits_batch(mlp, 8)
    t = (y + 3) % 10
    res = CW(mlp, c=1.0, kappa=1.0, steps=60, binary_search_steps=2, lr=0.05, targeted=True)(x, y, t)
    assert torch.equal(res.success, res.pred == t)
    assert res.success.float().mean() > 0.7
    with torch.no_grad():
        m = margin(mlp(res.x_adv), t)
    assert torch.all(m[res.success] > 1.0 - 1e-4)  # kept iterates succeed with the margin kappa
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert torch.all(res.l2[~res.success] == 0)  # failures come back unchanged
    assert torch.isfinite(res.extras["const"][res.success]).all()


def test_binary_search_finds_smaller_perturbations(mlp):
    x, y = digits_batch(mlp, 8)
    one = CW(mlp, c=10.0, steps=40, binary_search_steps=1, lr=0.05, abort_early=False)(x, y)
    four = CW(mlp, c=10.0, steps=40, binary_search_steps=4, lr=0.05, abort_early=False)(x, y)
    both = one.success & four.success
    assert both.any() and torch.all(four.l2[both] <= one.l2[both] + 1e-6)


@pytest.mark.parametrize("masked", [False, True])
def test_aborted_images_leave_the_batch_and_change_nothing(mlp, masked):
    """With ``abort_early`` an image stops once its loss stalls; it is then left out of the batch's
    forward and backward passes, and every image ends as it would alone."""
    x, y = digits_batch(mlp, 8)
    region = torch.zeros(8, 1, 28, 28)
    region[..., 4:24, 4:24] = 1
    mask = region if masked else None
    kw = dict(c=0.01, steps=60, binary_search_steps=2, lr=0.05, step_mask=mask)
    rows = []
    hook = mlp.register_forward_pre_hook(lambda _m, args: rows.append(len(args[0])))
    try:
        together = CW(mlp, **kw)(x, y)
    finally:
        hook.remove()
    assert min(rows) < len(x) < max(rows) + 1  # passes ran without the images that had aborted
    for i in range(len(x)):
        alone = CW(mlp, **{**kw, "step_mask": None if mask is None else mask[i:i + 1]})(x[i:i + 1], y[i:i + 1])
        assert torch.equal(alone.success, together.success[i:i + 1])
        assert torch.allclose(alone.x_adv, together.x_adv[i:i + 1], atol=1e-5)


def test_step_mask_zero_and_region(mlp):
    x, y = digits_batch(mlp, 6)
    res = CW(mlp, c=1.0, steps=20, binary_search_steps=1, step_mask=torch.zeros(1, 1, 28, 28), keep="last")(x, y)
    assert torch.equal(res.x_adv, x)
    region = torch.zeros(1, 1, 28, 28)
    region[..., 6:22, 6:22] = 1
    res = CW(mlp, c=5.0, steps=30, binary_search_steps=1, lr=0.05,
             step_mask=lambda xb: region.expand(len(xb), 1, 28, 28))(x, y)
    changed = (res.x_adv - x).abs().sum(1, keepdim=True) > 0
    assert not changed[:, :, :6].any() and not changed[:, :, :, 22:].any()
    assert res.success.any() and changed[res.success][:, :, 6:22, 6:22].any()


def test_extra_terms_compose_and_see_the_state(mlp):
    x, y = digits_batch(mlp, 8)
    seen = {"steps": [], "const": None}

    def far_from_benign(x_adv, state: AttackState):
        seen["steps"].append(state.step)
        seen["const"] = state.cache["const"]
        return -(x_adv - state.x).flatten(1).abs().sum(1)  # rewards a large L1 change

    plain = CW(mlp, c=1.0, steps=10, binary_search_steps=1, lr=0.05, keep="last", abort_early=False)(x, y)
    pushed = CW(mlp, c=1.0, lr=0.05, steps=10, binary_search_steps=1, keep="last", abort_early=False,
                terms=[(lambda s, n: 0.1 * (s + 1) / n, far_from_benign)])(x, y)
    assert seen["steps"] == list(range(10)) and seen["const"].shape == (8,)
    ok = plain.success & pushed.success
    assert ok.any() and pushed.l2[ok].mean() > plain.l2[ok].mean()


def test_keep_objective_and_x_init(model):
    x, y = batch(model, 8)
    res = CW(model, c=1.0, steps=20, binary_search_steps=2, keep="objective")(x, y)
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    warm = CW(model, c=1.0, steps=20, binary_search_steps=1)
    start = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    out = warm.perturb(x, y, None, x_init=start)
    assert out.shape == x.shape


def test_determinism_and_registry(model):
    x, y = batch(model, 6)
    a = get_attack("cw", model, c=0.5, steps=15, binary_search_steps=2)(x, y).x_adv
    b = get_attack("cw", model, c=0.5, steps=15, binary_search_steps=2)(x, y).x_adv
    assert torch.equal(a, b)


def test_bad_input(model):
    x, y = batch(model, 4)
    with pytest.raises(ValueError, match="c .*positive"):
        CW(model, c=0)
    with pytest.raises(ValueError, match="kappa"):
        CW(model, kappa=-1)
    with pytest.raises(ValueError, match="binary_search_steps"):
        CW(model, binary_search_steps=0)
    with pytest.raises(ValueError, match="keep"):
        CW(model, keep="best")
    with pytest.raises(ValueError, match=r"target classes must be in \[0, 10\)"):
        CW(model, targeted=True, steps=1)(x, y, torch.full_like(y, 10))
    with pytest.raises(ValueError, match="step mask values"):
        CW(model, steps=1, step_mask=torch.full((1, 1, 16, 16), 2.0))(x, y)
