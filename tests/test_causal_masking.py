"""The causal-masking analysis of Jha et al.: neighbours, Algorithm 1, sensitivity, ROC, the theorem."""
import math

import pytest
import torch
import torch.nn as nn

from advxai.attacks import FGSM
from advxai.defenses.causal_masking import (CausalMasking, detection_roc, mask_top, masked_counts, pixel_scores,
                                            ranks, sensitivity, theorem_violations)
from advxai.interpreters import IntegratedGradients
from advxai.models import Classifier, ModelInfo

from .helpers import digits_batch, small_digits_mlp


def _wrap(net, shape, classes=2):
    info = ModelInfo(name="toy", dataset="test", input_size=shape, class_names=[str(i) for i in range(classes)],
                     mean=(0.0,) * shape[0], std=(1.0,) * shape[0], cam_layer="", feature_layer="",
                     classifier_layer="", gap_head=False)
    return Classifier(net, info)


class BinaryLinear(nn.Module):
    """logits (-z/2, z/2) with z = w.x + b: IG of either logit is +-w_i x_i / 2 (zero baseline)."""

    def __init__(self, k, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.lin = nn.Linear(k, 1)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(1, k, generator=g))
            self.lin.bias.fill_(0.1)

    def forward(self, x):
        z = self.lin(x.flatten(1))
        return torch.cat([-z / 2, z / 2], 1)


class NonMonotone(nn.Module):
    """Two pixels (a, b): class 1's logit is 1 + 0.6(a + b) - 2 relu(b - a), class 0's is 0.5.
    At (1, 1) both pixels have IG 0.6; masking a alone flips the label, masking both does not."""

    def forward(self, x):
        a, b = x[:, 0, 0, 0], x[:, 0, 0, 1]
        z1 = 1 + 0.6 * (a + b) - 2 * torch.relu(b - a)
        return torch.stack([torch.full_like(z1, 0.5), z1], 1)


@pytest.fixture(scope="module")
def mlp():
    return small_digits_mlp()


def test_counts_positive_versus_all():
    m = torch.tensor([0, 25, 100])
    assert masked_counts(0.1, m, 100, "positive").tolist() == [0, 3, 10]
    assert masked_counts(0.3, torch.tensor([10]), 100, "positive").tolist() == [3]  # no float round-up
    assert masked_counts(0.1, m, 100, "all").tolist() == [0, 10, 10]
    assert masked_counts(0.5, m, 100, "all").tolist() == [0, 25, 50]
    assert masked_counts(0.0, m, 100, "positive").tolist() == [0, 0, 0]


def test_neighbour_masks_the_top_positive_pixels_in_every_channel():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 4, 4, generator=g) * 0.8 + 0.1
    attr = torch.randn(2, 3, 4, 4, generator=g)
    scores = pixel_scores(attr)
    assert torch.allclose(scores, attr.sum(1).flatten(1))
    rank, m = ranks(scores)
    assert torch.equal(m, (scores > 0).sum(1))
    out = mask_top(x, rank, torch.tensor([3, 0]), baseline=0.0)
    hidden = (out == 0).all(1).flatten(1)
    assert hidden[0].sum() == 3 and hidden[1].sum() == 0
    top3 = scores[0].topk(3).indices
    assert hidden[0, top3].all()
    assert torch.equal(out[:, :, ~hidden[0].view(4, 4)][0], x[:, :, ~hidden[0].view(4, 4)][0])


def _algorithm1(model, x, scores, eps, max_delta, fraction_of):
    """Algorithm 1 as the paper writes it, one image at a time (the oracle)."""
    rank, m = ranks(scores)
    label = model(x).argmax(1)
    out = []
    for i in range(len(x)):
        delta = eps
        while delta <= max_delta + 1e-12:
            counts = masked_counts(delta, m[i:i + 1], scores.shape[1], fraction_of)
            if model(mask_top(x[i:i + 1], rank[i:i + 1], counts)).argmax(1) != label[i]:
                break
            delta += eps
        out.append(delta if delta <= max_delta + 1e-12 else math.inf)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("fraction_of", ["positive", "all"])
def test_rho_equals_the_literal_algorithm(mlp, fraction_of):
    x, y = digits_batch(mlp, 10)
    adv = FGSM(mlp, eps=0.15)(x, y).x_adv
    xs = torch.cat([x, adv])
    cm = CausalMasking(mlp, epsilon=0.02, max_delta=0.5, fraction_of=fraction_of, steps=16, chunk=5, batch_size=7)
    res = cm.analyse(xs)
    expected = _algorithm1(mlp, xs, res.scores, 0.02, 0.5, fraction_of)
    assert torch.allclose(res.rho, expected, atol=1e-9)  # inf == inf
    assert torch.equal(res.label, mlp(xs).argmax(1))
    assert res.extras["ig_delta"].shape == (20,)
    # the detector's score, the sensitivity and the curve agree with rho
    again = cm.analyse(xs, explanation=IntegratedGradients(mlp, steps=16)(xs))
    assert torch.equal(again.rho, res.rho)
    floor = -(0.5 + 0.02)  # an unchanged label scores one grid step below the last fraction tried
    assert torch.equal(cm.score(xs), -torch.where(torch.isinf(res.rho), torch.full_like(res.rho, -floor), res.rho))
    cm.calibrate(xs[:10])  # benign images: their rho sets the threshold
    assert torch.equal(cm.detect(adv), cm.score(adv) > cm.threshold)
    assert sensitivity(res.rho, 0.1) == pytest.approx(1 - (res.rho <= 0.1 + 1e-12).float().mean().item())
    assert res.curve([0.1])[0] == pytest.approx(1 - sensitivity(res.rho, 0.1))


def test_roc():
    perfect = detection_roc(torch.tensor([math.inf, 0.3, 0.4]), torch.tensor([0.01, 0.02]), max_delta=0.5)
    assert perfect["auc"] == 1.0
    same = detection_roc(torch.tensor([0.1, math.inf]), torch.tensor([0.1, math.inf]))
    assert same["auc"] == 0.5
    backwards = detection_roc(torch.tensor([0.01, 0.02]), torch.tensor([math.inf, 0.3]))
    assert backwards["auc"] == 0.0


def test_theorem_holds_for_a_linear_binary_model():
    model = _wrap(BinaryLinear(9), (1, 3, 3))
    x = torch.rand(6, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    scores = pixel_scores(IntegratedGradients(model, steps=8)(x).raw)
    for delta in (0.5, 1.0):
        out = theorem_violations(model, x, scores, delta, exhaustive=True)
        assert out["violations"].sum() == 0 and out["subsets"].sum() > 0
        assert torch.equal(out["changed_by_subset"], out["changed_by_full"])  # some subset flips iff the full set does


def test_theorem_checker_finds_a_violation():
    model = _wrap(NonMonotone(), (1, 1, 2))
    x = torch.ones(1, 1, 1, 2)
    expl = IntegratedGradients(model, steps=32)(x)
    scores = pixel_scores(expl.raw)
    assert (scores > 0).all()
    out = theorem_violations(model, x, scores, 1.0, exhaustive=True)
    assert out["violations"].item() == 1 and not out["changed_by_full"].item() and out["changed_by_subset"].item()


def test_bad_input(mlp):
    with pytest.raises(ValueError, match=r"delta .* must be in \[0, 1\]"):
        sensitivity(torch.zeros(3), 1.5)
    with pytest.raises(ValueError, match=r"max_delta .* must be in \[0, 1\]"):
        CausalMasking(mlp, max_delta=-0.1)
    with pytest.raises(ValueError, match="epsilon"):
        CausalMasking(mlp, epsilon=0)
    with pytest.raises(ValueError, match="fraction_of"):
        CausalMasking(mlp, fraction_of="pixels")
    cm = CausalMasking(mlp, epsilon=0.1, max_delta=0.2)
    with pytest.raises(RuntimeError, match="not calibrated"):
        cm.detect(torch.rand(1, 1, 28, 28))
    with pytest.raises(ValueError, match=r"fpr .* must be in \[0, 1\)"):
        CausalMasking(mlp, fpr=1.5)
    with pytest.raises(ValueError, match="valid: .*ig"):
        CausalMasking(mlp, interpreter="integrated")


def test_an_empty_batch_gives_an_empty_result():
    from .helpers import tiny_classifier

    cm = CausalMasking(tiny_classifier(), epsilon=0.1, max_delta=0.3, steps=4)
    res = cm.analyse(torch.zeros(0, 1, 16, 16))
    assert len(res) == 0 and res.rank.shape == (0, 256) and res.changed.shape == (0, 3)
    assert math.isnan(res.changed_fraction(0.2))
