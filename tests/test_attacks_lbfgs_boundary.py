"""L-BFGS (targeted, box-constrained, search over c) and the Boundary attack (decision-based)."""
import pytest
import torch

from advxai.attacks import LBFGS, Boundary, get_attack, random_targets

from .helpers import digits_batch, small_digits_mlp


@pytest.fixture(scope="module")
def mlp():
    return small_digits_mlp()


def test_lbfgs_reaches_the_target_inside_the_box(mlp):
    x, y = digits_batch(mlp, 10)
    t = random_targets(y, 10, seed=3)
    res = get_attack("lbfgs", mlp, targeted=True, search_steps=5, max_iter=60)(x, y, t)
    assert res.success.float().mean() >= 0.9
    assert torch.equal(res.pred[res.success], t[res.success])  # targeted means the target
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert torch.equal(res.x_adv[~res.success], x[~res.success])
    assert (res.extras["const"][res.success] > 0).all()


def test_lbfgs_search_over_c_finds_smaller_perturbations(mlp):
    x, y = digits_batch(mlp, 8, seed=1)
    t = random_targets(y, 10, seed=1)
    one = LBFGS(mlp, c=1e-3, search_steps=1, max_iter=60)(x, y, t)
    searched = LBFGS(mlp, c=1e-3, search_steps=6, max_iter=60)(x, y, t)
    both = one.success & searched.success
    assert both.sum() >= 4
    assert (searched.l2[both] <= one.l2[both] + 1e-4).all()
    assert searched.l2[both].mean() < one.l2[both].mean()


def test_lbfgs_bad_input(mlp):
    with pytest.raises(ValueError, match="no untargeted mode"):
        LBFGS(mlp, targeted=False)
    with pytest.raises(ValueError, match="c .*positive"):
        LBFGS(mlp, c=0)
    x, y = digits_batch(mlp, 2)
    with pytest.raises(ValueError, match="target equals the true label"):
        LBFGS(mlp)(x, y, y)


def test_boundary_stays_adversarial_and_gets_closer(mlp):
    x, y = digits_batch(mlp, 10)
    res = get_attack("boundary", mlp, steps=300, seed=0)(x, y)
    assert res.success.all()  # every iterate it keeps is adversarial
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    start = res.extras["l2_start"]
    assert (res.l2 <= start + 1e-5).all() and res.l2.mean() < 0.8 * start.mean()
    again = Boundary(mlp, steps=300, seed=0)(x, y)
    assert torch.equal(again.x_adv, res.x_adv)  # deterministic under a seed


def test_boundary_distance_decreases_with_steps_like_foolbox(mlp):
    fb = pytest.importorskip("foolbox")
    x, y = digits_batch(mlp, 8, seed=2)
    ours = [Boundary(mlp, steps=s, seed=0)(x, y) for s in (50, 400)]
    assert ours[0].success.all() and ours[1].success.all()
    assert ours[1].l2.mean() < ours[0].l2.mean()
    fmodel = fb.PyTorchModel(mlp, bounds=(0, 1))
    theirs = []
    for s in (50, 400):
        torch.manual_seed(0)
        _, adv, ok = fb.attacks.BoundaryAttack(steps=s)(fmodel, x, y, epsilons=None)
        assert ok.all()
        theirs.append((adv - x).flatten(1).norm(dim=1).mean().item())
    assert theirs[1] < theirs[0]
    # same algorithm, same budget: distances of the same order
    assert 0.33 < ours[1].l2.mean().item() / theirs[1] < 3.0


def test_boundary_bad_input(mlp):
    with pytest.raises(ValueError, match="no targeted mode"):
        Boundary(mlp, targeted=True)
    with pytest.raises(ValueError, match="spherical_step must be in"):
        Boundary(mlp, spherical_step=0)
