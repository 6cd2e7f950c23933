"""AdvEdge / AdvEdge+ step masks on the PGD and C&W frameworks: variants by name, thresholds,
the warm-start-only placement, and masks that leave nothing to perturb."""
import math
import warnings

import pytest
import torch

from advxai.attacks import CW, PGD
from advxai.attacks.edges import (advedge_threshold, edge_mask, edge_step, edge_step_mask, empty_masks,
                                  sobel_magnitude, split_by_placement)

from .helpers import batch, small_digits_mlp, tiny_classifier


@pytest.fixture(scope="module")
def model():
    return tiny_classifier(in_channels=3, size=16, width=12)


@pytest.fixture(scope="module")
def mlp():
    return small_digits_mlp()


def _edge_images(n=6, size=16, seed=0, noise=0.02):
    """Images in [0.2, 0.8] (so no step is clipped at 0 or 1) with one bright square: strong edges on its border only."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 + noise * torch.rand(n, 3, size, size, generator=g)
    x[..., 4:12, 4:12] += 0.4
    return x


def test_variants_by_name():
    x = _edge_images()
    assert torch.equal(edge_step_mask(x, "advedge"), sobel_magnitude(x))
    plus = edge_step_mask(x, "AdvEdge+", 0.05)
    assert torch.equal(plus, edge_mask(x, 0.05)) and set(plus.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(edge_step_mask(x, "advedge+"), edge_mask(x, 0.1))  # the paper's default
    assert torch.equal(edge_step("advedge+", 0.2)(x), edge_mask(x, 0.2))
    assert advedge_threshold("rts") == 0.05 and advedge_threshold("cam") == advedge_threshold(None) == 0.1


@pytest.mark.parametrize("threshold", [-0.01, 1.5, float("nan"), True, "0.1"])
def test_threshold_outside_unit_interval_is_an_error(threshold):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        edge_step("advedge+", threshold)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        edge_mask(torch.rand(1, 3, 8, 8), threshold)


def test_unknown_variant_and_misplaced_threshold():
    with pytest.raises(ValueError, match="advedge, advedge\\+"):
        edge_step("sobel")
    with pytest.raises(ValueError, match="no threshold"):
        edge_step("advedge", 0.1)
    with pytest.raises(ValueError, match="throughout, warm_start"):
        split_by_placement(None, "middle")
    m = edge_step("advedge")
    assert split_by_placement(m, "throughout") == (m, m) and split_by_placement(m, "warm_start") == (m, None)


def test_advedge_weights_every_pgd_step(model):
    """One sign step of size alpha moves each pixel by exactly alpha * edge weight (where the gradient is not 0)."""
    x = _edge_images(noise=0.0)
    y = model(x).argmax(1)
    alpha = 0.05
    res = PGD(model, eps=0.1, alpha=alpha, steps=1, random_start=False, step_mask=edge_step("advedge"))(x, y)
    w = sobel_magnitude(x).expand_as(x)
    moved = (res.x_adv - x).abs()
    assert torch.all(moved <= alpha * w + 1e-6)
    assert torch.allclose(moved[moved > 0], (alpha * w)[moved > 0], atol=1e-6)
    assert (w > 0).any() and moved[w == 0].max() == 0


@pytest.mark.parametrize("threshold", [0.1, 0.05])
def test_advedge_plus_on_pgd_and_cw_touches_only_edges(model, threshold):
    x = _edge_images()
    y = model(x).argmax(1)
    outside = edge_mask(x, threshold).expand_as(x) == 0
    step = edge_step("advedge+", threshold)
    pgd = PGD(model, eps=0.1, steps=5, step_mask=step)(x, y)
    cw = CW(model, c=10.0, steps=20, binary_search_steps=1, lr=0.05, step_mask=step, keep="last")(x, y)
    for res in (pgd, cw):
        assert (res.x_adv - x)[outside].abs().max() == 0
    assert (pgd.x_adv - x)[~outside].abs().max() > 0
    assert "mask_empty" in pgd.extras and not pgd.extras["mask_empty"].any()


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 1.0)])
def test_empty_edge_mask_is_a_reported_failure_not_a_division_by_zero(model, norm, eps):
    x = torch.full((4, 3, 16, 16), 0.5)  # flat images: no edge anywhere
    x[2:, :, 4:12, 4:12] = 0.9  # two images with edges
    y = model(x).argmax(1)
    wrong = (y + 1) % 10  # labels the model gets wrong: an untouched image already "fools" it
    with pytest.warns(UserWarning, match="no pixel to perturb in 2 of 4"):
        res = PGD(model, eps=eps, steps=3, norm=norm, step_mask=edge_step("advedge"))(x, wrong)
    assert torch.isfinite(res.x_adv).all()
    assert torch.equal(res.x_adv[:2], x[:2])
    assert res.extras["mask_empty"].tolist() == [True, True, False, False]
    assert not res.success[:2].any()  # reported failed although pred != label
    with pytest.warns(UserWarning, match="no pixel to perturb in 4 of 4"):
        res = CW(model, steps=5, binary_search_steps=1, step_mask=edge_step("advedge+", 1.0))(x, wrong)
    assert torch.equal(res.x_adv, x) and not res.success.any() and res.extras["mask_empty"].all()


def test_empty_masks_helper():
    m = torch.zeros(3, 1, 4, 4)
    m[1, 0, 2, 2] = 0.3
    assert empty_masks(m).tolist() == [True, False, True]
    assert empty_masks(torch.zeros(1, 1, 4, 4), n=5).tolist() == [True] * 5


def test_warm_start_placement_equals_two_stages(model):
    """mask_steps=k (edges only in the first k steps) is a masked warm start followed by free steps."""
    x = _edge_images()
    y = model(x).argmax(1)
    step = edge_step("advedge+", 0.1)
    kw = dict(eps=0.1, alpha=0.01, random_start=False)
    one_run = PGD(model, steps=6, step_mask=step, mask_steps=2, **kw)(x, y).x_adv
    warm_mask, main_mask = split_by_placement(step, "warm_start")
    warm = PGD(model, steps=2, step_mask=warm_mask, **kw).perturb(x, y, None)
    two_stages = PGD(model, steps=4, step_mask=main_mask, **kw).perturb(x, y, None, x_init=warm)
    assert torch.allclose(one_run, two_stages, atol=1e-7)
    outside = edge_mask(x, 0.1).expand_as(x) == 0
    assert (one_run - x)[outside].abs().max() > 0  # after the warm start, steps leave the edges
    always = PGD(model, steps=6, step_mask=step, **kw)(x, y).x_adv
    assert (always - x)[outside].abs().max() == 0
    assert torch.equal(PGD(model, steps=6, step_mask=step, mask_steps=6, **kw)(x, y).x_adv, always)


def test_warm_start_only_mask_is_not_reported_empty(model):
    x = torch.full((2, 3, 16, 16), 0.5)
    y = model(x).argmax(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = PGD(model, eps=0.1, steps=4, step_mask=edge_step("advedge"), mask_steps=1)(x, y)
    assert not res.extras["mask_empty"].any()


def test_cw_mask_steps_frees_pixels_after_the_warm_start(mlp):
    from .helpers import digits_batch

    x, y = digits_batch(mlp, 6)
    step = edge_step("advedge+", 0.1)
    outside = edge_mask(x, 0.1).expand_as(x) == 0
    kw = dict(c=5.0, steps=30, binary_search_steps=1, lr=0.05, keep="last", abort_early=False)
    always = CW(mlp, step_mask=step, **kw)(x, y)
    warm = CW(mlp, step_mask=step, mask_steps=10, **kw)(x, y)
    assert (always.x_adv - x)[outside].abs().max() == 0
    assert (warm.x_adv - x)[outside].abs().max() > 0


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_mask_steps_checked(model, bad):
    with pytest.raises(ValueError, match="mask_steps"):
        PGD(model, mask_steps=bad)
    with pytest.raises(ValueError, match="mask_steps"):
        CW(model, mask_steps=bad)


def test_adv2_with_edges_throughout_or_in_its_warm_start_only(model):
    """ADV² runs its warm start as a separate masked PGD; mask_steps=0 frees its joint stage (the authors' code)."""
    from advxai.attacks import get_attack

    x = _edge_images(4)
    y = model(x).argmax(1)
    target = (y + 1) % 10
    outside = edge_mask(x, 0.1).expand_as(x) == 0
    kw = dict(interpreter="cam", eps=0.1, alpha=0.01, steps=4, warm_steps=3, step_mask=edge_step("advedge+", 0.1))
    throughout = get_attack("adv2", model, **kw)(x, y, target)
    assert (throughout.x_adv - x)[outside].abs().max() == 0
    warm_only = get_attack("adv2", model, **kw)
    warm_only.mask_steps = 0  # edges in the warm start only
    res = warm_only(x, y, target)
    assert (res.x_adv - x)[outside].abs().max() > 0


# --------------------------------------------------------------------------- edge placement by name, StAdv


def test_adv2_builder_edge_placement(model):
    """edge_placement='warm_start' equals setting mask_steps=0 after construction; 'throughout' keeps every step on edges."""
    from advxai.attacks import get_attack

    x = _edge_images(4)
    y = model(x).argmax(1)
    target = (y + 1) % 10
    outside = edge_mask(x, 0.1).expand_as(x) == 0
    kw = dict(interpreter="cam", eps=0.1, alpha=0.01, steps=4, warm_steps=3, step_mask=edge_step("advedge+", 0.1))
    through = get_attack("adv2", model, edge_placement="throughout", **kw)
    assert through.mask_steps is None
    assert (through(x, y, target).x_adv - x)[outside].abs().max() == 0
    warm = get_attack("adv2", model, edge_placement="warm_start", **kw)
    assert warm.mask_steps == 0
    legacy = get_attack("adv2", model, **kw)
    legacy.mask_steps = 0
    a, b = warm(x, y, target).x_adv, legacy(x, y, target).x_adv
    assert torch.equal(a, b) and (a - x)[outside].abs().max() > 0


def test_edge_placement_checked(model):
    from advxai.attacks import get_attack
    from advxai.attacks.adv2 import placement_mask_steps

    with pytest.raises(ValueError, match="throughout, warm_start"):
        get_attack("adv2", model, interpreter="cam", edge_placement="everywhere")
    with pytest.raises(ValueError, match="throughout, warm_start"):
        get_attack("adv2_stadv", model, interpreter="cam", edge_placement="middle")
    with pytest.raises(ValueError, match="warm_start"):
        placement_mask_steps("throughout", 10, mask_steps=3)
    assert placement_mask_steps("warm_start", 10) == 3 and placement_mask_steps("warm_start", 10, 4) == 4
    assert placement_mask_steps("warm_start", 10, warm_stage=True) == 0
    cw = get_attack("adv2_cw", model, interpreter="cam", steps=20, edge_placement="warm_start")
    assert cw.mask_steps == 6


def test_adv2_cw_edges_throughout_and_warm_start(model):
    from advxai.attacks import get_attack

    x = _edge_images(4)
    y = model(x).argmax(1)
    target = (y + 1) % 10
    outside = edge_mask(x, 0.1).expand_as(x) == 0
    # untargeted (the tiny random model) so that some iterates succeed and are kept
    kw = dict(interpreter="cam", c=100.0, steps=30, lr=0.1, binary_search_steps=1, abort_early=False, keep="last",
              targeted=False, step_mask=edge_step("advedge+", 0.1))
    through = get_attack("adv2_cw", model, **kw)(x, y)
    assert (through.x_adv - x)[outside].abs().max() == 0
    warm = get_attack("adv2_cw", model, edge_placement="warm_start", mask_steps=5, **kw)(x, y)
    assert warm.success.any() and (warm.x_adv - x)[outside].abs().max() > 0


@pytest.mark.parametrize("variant, threshold", [("advedge", None), ("advedge+", 0.1)])
def test_stadv_step_mask_moves_only_edge_pixels(model, variant, threshold):
    """A pixel whose flow is never updated samples itself: off the edges the image keeps its benign values."""
    from advxai.attacks import StAdv

    x = _edge_images(4, noise=0.0)  # flat regions: AdvEdge's weight is exactly 0 there
    y = model(x).argmax(1)
    res = StAdv(model, steps=15, lr=0.05, keep="last", step_mask=edge_step(variant, threshold))(x, y)
    flow = res.extras["flow"]
    weights = edge_step_mask(x, variant, threshold)
    off = (weights == 0).expand_as(flow)
    assert flow[off].abs().max() == 0 and flow.abs().max() > 0
    assert torch.allclose(res.x_adv[off[:, :1].expand_as(x)], x[off[:, :1].expand_as(x)], atol=1e-6)
    assert not res.extras["mask_empty"].any()


def test_stadv_advedge_weights_scale_the_first_update(model):
    """One Adam step moves every flow component by lr (sign of the gradient); AdvEdge scales it by the edge weight."""
    from advxai.attacks import StAdv

    x = _edge_images(2)
    y = model(x).argmax(1)
    lr = 0.05
    free = StAdv(model, steps=1, lr=lr, keep="last", tau=0.0)(x, y).extras["flow"]
    masked = StAdv(model, steps=1, lr=lr, keep="last", tau=0.0, step_mask=edge_step("advedge"))(x, y).extras["flow"]
    w = sobel_magnitude(x).expand_as(free)
    assert torch.allclose(masked, free * w, atol=1e-6)


def test_stadv_placement_and_empty_mask(model):
    from advxai.attacks import StAdv, get_attack

    x = _edge_images(4)
    y = model(x).argmax(1)
    target = (y + 1) % 10
    step = edge_step("advedge+", 0.1)
    off = (edge_mask(x, 0.1) == 0).expand(-1, 2, -1, -1)
    kw = dict(interpreter="cam", steps=12, lr=0.05, keep="last", step_mask=step)
    through = get_attack("adv2_stadv", model, **kw)
    warm = get_attack("adv2_stadv", model, edge_placement="warm_start", mask_steps=4, **kw)
    assert through.mask_steps is None and warm.mask_steps == 4
    assert through(x, y, target).extras["flow"][off].abs().max() == 0
    assert warm(x, y, target).extras["flow"][off].abs().max() > 0
    flat = torch.full((3, 3, 16, 16), 0.5)
    wrong = (model(flat).argmax(1) + 1) % 10
    with pytest.warns(UserWarning, match="no pixel to perturb in 3 of 3"):
        res = StAdv(model, steps=3, step_mask=edge_step("advedge"))(flat, wrong)
    assert torch.equal(res.x_adv, flat) and not res.success.any() and res.extras["mask_empty"].all()


def test_adv2_mask_honours_warm_start_placement():
    """MASK's bilevel attack: edges throughout keep every step on the edges; 'warm_start' frees the bilevel stage."""
    from advxai.attacks import get_attack

    m = tiny_classifier(in_channels=3, size=16, width=8)
    x = _edge_images(2)
    y = m(x).argmax(1)
    target = (y + 1) % 10
    outside = edge_mask(x, 0.1).expand_as(x) == 0
    kw = dict(interpreter="mask", eps=0.1, alpha=0.02, steps=3, warm_steps=2, n_step=1, reset_every=2, search_steps=2,
              confidence=0.0, interpreter_settings=dict(iterations=3), step_mask=edge_step("advedge+", 0.1))
    through = get_attack("adv2", m, **kw)(x, y, target)
    assert (through.x_adv - x)[outside].abs().max() == 0
    warm = get_attack("adv2", m, edge_placement="warm_start", **kw)(x, y, target)
    assert (warm.x_adv - x)[outside].abs().max() > 0
