import pytest
import torch
import torchattacks

from advxai.attacks import BIM, FGSM, PGD, AttackState, get_attack, list_attacks

from .helpers import batch, digits_batch, tiny_classifier, trained_digits_classifier


@pytest.fixture(scope="module")
def model():
    return tiny_classifier(in_channels=3, size=16, width=12)


@pytest.fixture(scope="module")
def digits_model():
    return trained_digits_classifier()


def _agree(a, b, tol=1e-6):
    """Fraction of pixel values that agree (sign ties at a zero gradient may differ in rounding)."""
    return ((a - b).abs() <= tol).float().mean().item()


def test_fgsm_equals_torchattacks(model):
    x, y = batch(model, 16)
    ours = FGSM(model, eps=0.05)(x, y).x_adv
    theirs = torchattacks.FGSM(model, eps=0.05)(x, y)
    assert _agree(ours, theirs) > 0.999


def test_pgd_equals_torchattacks_without_random_start(model):
    x, y = batch(model, 16)
    ours = PGD(model, eps=0.03, alpha=0.005, steps=7, random_start=False)(x, y).x_adv
    theirs = torchattacks.PGD(model, eps=0.03, alpha=0.005, steps=7, random_start=False)(x, y)
    assert _agree(ours, theirs) > 0.999


def test_targeted_pgd_equals_torchattacks(model):
    x, y = batch(model, 16)
    t = (y + 1) % 10
    ours = PGD(model, eps=0.03, alpha=0.005, steps=5, random_start=False, targeted=True)(x, y, t).x_adv
    ta = torchattacks.PGD(model, eps=0.03, alpha=0.005, steps=5, random_start=False)
    ta.set_mode_targeted_by_function(lambda images, labels: t)
    assert _agree(ours, ta(x, y)) > 0.999


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 1.5)])
def test_budget_and_range(digits_model, norm, eps):
    x, y = digits_batch(digits_model, 16)
    res = PGD(digits_model, eps=eps, steps=20, norm=norm, random_start=True)(x, y)
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    bound = res.linf if norm == "linf" else res.l2
    assert torch.all(bound <= eps + 1e-5)
    assert res.success.float().mean() > 0.5


def test_targeted_success_means_the_target(digits_model):
    x, y = digits_batch(digits_model, 16)
    t = (y + 3) % 10
    res = PGD(digits_model, eps=0.2, steps=30, targeted=True)(x, y, t)
    assert torch.equal(res.success, res.pred == t)
    assert res.success.float().mean() > 0.5


def test_zero_step_mask_changes_nothing_and_masks_are_respected(model):
    x, y = batch(model, 8)
    res = PGD(model, eps=0.1, steps=5, step_mask=torch.zeros(1, 1, 16, 16))(x, y)
    assert torch.equal(res.x_adv, x)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    res = PGD(model, eps=0.1, steps=5, step_mask=lambda xb: mask.expand(len(xb), 1, 16, 16))(x, y)
    changed = (res.x_adv - x).abs().sum(1, keepdim=True) > 0
    assert not changed[:, :, :4].any() and changed[:, :, 4:12, 4:12].any()


def test_extra_terms_compose(model):
    """A term that penalises leaving the image pulls the result back: the perturbation shrinks."""
    x, y = batch(model, 8)

    def stay_close(x_adv, state: AttackState):
        return 50.0 * (x_adv - state.x).flatten(1).abs().sum(1)

    free = PGD(model, eps=0.1, steps=10, random_start=False)(x, y)
    held = PGD(model, eps=0.1, steps=10, random_start=False, terms=[(1.0, stay_close)])(x, y)
    assert held.l2.mean() < free.l2.mean()


def test_schedules_and_keep_best(model):
    x, y = batch(model, 8)
    seen = []

    def term(x_adv, state):
        seen.append(state.step)
        return torch.zeros(len(x_adv))

    PGD(model, steps=4, terms=[(lambda s, n: s / n, term)])(x, y)
    assert seen == [0, 1, 2, 3]
    res = PGD(model, eps=0.2, steps=15, keep="best")(x, y)
    assert torch.all(res.linf <= 0.2 + 1e-6)


def test_determinism_under_seed(model):
    x, y = batch(model, 8)
    a = PGD(model, steps=3, seed=5)(x, y).x_adv
    b = PGD(model, steps=3, seed=5)(x, y).x_adv
    c = PGD(model, steps=3, seed=6)(x, y).x_adv
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bim_defaults_and_registry(model):
    bim = BIM(model, eps=0.1, steps=10)
    assert bim.alpha == pytest.approx(0.01) and bim.random_start is False
    assert {"fgsm", "bim", "pgd"} <= set(list_attacks())
    assert isinstance(get_attack("pgd", model, eps=0.1), PGD)
    with pytest.raises(ValueError, match="valid: .*pgd"):
        get_attack("pgdx", model)


def test_bad_input_fails_early(model):
    x, y = batch(model, 4)
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\]"):
        PGD(model, eps=8)
    with pytest.raises(ValueError, match="steps"):
        PGD(model, steps=0)
    with pytest.raises(ValueError, match="needs target"):
        PGD(model, targeted=True)(x, y)
    with pytest.raises(ValueError, match="target equals the true label"):
        PGD(model, targeted=True)(x, y, y)
    with pytest.raises(ValueError, match=r"target classes must be in \[0, 10\)"):
        PGD(model, targeted=True)(x, y, torch.full_like(y, 12))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        PGD(model)(x * 3, y)
    with pytest.raises(ValueError, match="untargeted"):
        PGD(model)(x, y, (y + 1) % 10)
    with pytest.raises(ValueError, match="step mask"):
        PGD(model, step_mask=torch.ones(1, 1, 5, 5))(x, y)


def test_result_frame_and_batching(model):
    x, y = batch(model, 10)
    res = PGD(model, steps=2, batch_size=3)(x, y)
    assert len(res) == 10
    df = res.frame(attack="pgd")
    assert list(df.columns[:3]) == ["y", "pred", "success"] and (df.attack == "pgd").all()


@pytest.mark.parametrize("targeted", [True, False])
def test_early_stop_keeps_each_image_at_its_first_success(digits_model, targeted):
    """Each image ends where plain PGD first succeeded on it, or where plain PGD ends when it never
    did; the finished images are left out of later forward passes."""
    x, y = digits_batch(digits_model, 16)
    t = (y + 3) % 10 if targeted else None
    kw = dict(eps=0.04, alpha=0.01, random_start=False, targeted=targeted)
    steps = 12
    # plain PGD's iterate after k steps, k = 0 .. steps
    iterates = [x] + [PGD(digits_model, steps=k, **kw).perturb(x, y, t) for k in range(1, steps + 1)]
    with torch.no_grad():
        preds = [digits_model(it).argmax(1) for it in iterates]
    ok = torch.stack([(p == t) if targeted else (p != y) for p in preds[:-1]])  # success before step k+1
    first = torch.where(ok.any(0), ok.float().argmax(0), torch.full((len(x),), steps))
    assert 0 < int((first < steps).sum()) < len(x), "the test needs images that stop and images that go on"
    expected = torch.stack([iterates[int(k)][i] for i, k in enumerate(first)])

    seen = []
    hook = digits_model.register_forward_hook(lambda m, inp, out: seen.append(len(inp[0])))
    try:
        stopped = PGD(digits_model, steps=steps, early_stop=True, **kw).perturb(x, y, t)
    finally:
        hook.remove()
    assert torch.allclose(stopped, expected, atol=1e-6)
    assert sum(seen) == int(torch.clamp(first + 1, max=steps).sum())  # one pass per step an image is live


def test_early_stop_needs_the_prediction_loss_alone(model):
    with pytest.raises(ValueError, match="early_stop"):
        PGD(model, keep="best", early_stop=True)
    with pytest.raises(ValueError, match="early_stop"):
        PGD(model, terms=[(1.0, lambda x_adv, state: x_adv.flatten(1).sum(1))], early_stop=True)
    with pytest.raises(TypeError, match="early_stop"):
        PGD(model, early_stop="yes")
