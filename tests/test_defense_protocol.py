"""The one protocol of detectors and defenses (advxai.defenses.base), and proof that the defenses
implementing it compute what they computed before it: the values below were recorded from the former
arena adapters (IGMasking, FeatureSqueezingDetector, HeatAndBlurChange, MultiInterpreter, SJEDisagreement,
HeatAndBlurDefense, Arena.fit), from the former ``adaptive_attack`` function and ``adaptive_adv2``
factory, on :func:`small_digits_cnn` (trained on one thread, so the same weights in every session)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from advxai import arena
from advxai.attacks import ATTACKS, PGD, get_attack
from advxai.attributes import SJE, SJEDisagreement
from advxai.defenses.base import Defense, Detector, Undefended, detection_rate, threshold_at_fpr
from advxai.defenses.feature_squeezing import FeatureSqueezing
from advxai.defenses.heat_and_blur import AdaptiveHeatAndBlur, HeatAndBlur
from advxai.runtime import module_device

from .helpers import digits16, small_digits_cnn, tiny_classifier

RTOL = 1e-6  # a float32 network: agreement to the last few bits, whatever the thread count


def close(got, expected):
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float), rtol=RTOL, atol=1e-9)


@pytest.fixture(scope="module")
def digits():
    model = small_digits_cnn()
    xt, yt = digits16("test")
    x, y = xt[:8], yt[:8]
    pgd = PGD(model, eps=0.1, alpha=0.02, steps=10)(x, y)
    return model, xt, yt, x, y, xt[100:120], pgd


# --------------------------------------------------------------------------- the same numbers as before


FS_SCORES = [0.068809204, 0.25380358, 0.40908295, 0.98679978, 0.34281611, 0.24914582, 0.41584519, 0.4818306]
RECORDED = {  # member: (scores of the PGD images, threshold, share of calibration images flagged)
    "ig": ([-0.05, -0.05, -0.1, -0.15, -0.05, -0.05, -0.05, -0.1], -0.05, 0.0),
    "fs": (FS_SCORES, 0.46157303, 0.1),
    "hb": ([0.058463439, 0.35715708, 0.58677924, 0.85316443, 0.26352698, 0.41895378, 0.22298411, 0.32609293],
           0.6064781, 0.1),
    "mi": ([0.7020524, 0.44887943, 0.7020524, 0.2979476, 0.7020524, 0.7020524, 0.7020524, 0.7020524], 0.7020524, 0.0),
}
RECORDED_LABELS = {"none": [1, 4, 0, 5, 1, 4, 2, 0], "hbd": [1, 4, 9, 8, 1, 1, 2, 2]}
# (attack, member): (value, n, auc)
RECORDED_CELLS = {
    ("benign", "ig"): (0.0, 8, None), ("pgd", "ig"): (0.0, 8, 0.3671875), ("fgsm", "ig"): (0.0, 5, 0.5625),
    ("benign", "fs"): (0.375, 8, None), ("pgd", "fs"): (0.25, 8, 0.390625), ("fgsm", "fs"): (0.2, 5, 0.5),
    ("benign", "hb"): (0.375, 8, None), ("pgd", "hb"): (0.125, 8, 0.34375), ("fgsm", "hb"): (0.4, 5, 0.55),
    ("benign", "mi"): (0.0, 8, None), ("pgd", "mi"): (0.0, 8, 0.890625), ("fgsm", "mi"): (0.0, 5, 0.775),
    ("benign", "none"): (0.375, 8, None), ("pgd", "none"): (0.0, 8, None), ("fgsm", "none"): (0.375, 8, None),
    ("benign", "hbd"): (0.125, 8, None), ("pgd", "hbd"): (0.0, 8, None), ("fgsm", "hbd"): (0.125, 8, None),
}


def test_members_score_threshold_and_label_as_the_former_adapters_did(digits):
    model, xt, yt, x, y, calib, pgd = digits
    names = ["ig_masking", "feature_squeezing", "heat_and_blur_change", "multi_interpreter", "undefended",
             "heat_and_blur"]
    built = arena.build_members(names, model, fpr=0.1, settings={
        "ig_masking": dict(epsilon=0.05, max_delta=0.5, ig_steps=4),
        "multi_interpreter": dict(interpreters=("grad", "cam"), n_estimators=5)})
    members = dict(zip(["ig", "fs", "hb", "mi", "none", "hbd"], built.values()))
    assert list(built) == [arena.LABELS[n] for n in names]
    train_x, train_y = xt[200:216], yt[200:216]
    members["mi"].fit(train_x, PGD(model, eps=0.1, alpha=0.02, steps=10)(train_x, train_y).x_adv)
    contest = arena.Arena(members, model).calibrate(calib)
    for key, (scores, threshold, rate) in RECORDED.items():
        m = members[key]
        close(m.score(pgd.x_adv), scores)
        close([m.threshold, m.benign_calibration_rate], [threshold, rate])
        assert torch.equal(m.detect(pgd.x_adv), m.score(pgd.x_adv) > m.threshold)
    for key, labels in RECORDED_LABELS.items():
        assert members[key].predict(pgd.x_adv).tolist() == labels
    noise = torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(7)))
    fgsm = arena.as_result(model, x, (x + 0.05 * noise).clamp(0, 1), y)
    records = contest.evaluate({"pgd": pgd, "fgsm": fgsm}, x, y)
    assert len(records) == len(RECORDED_CELLS)
    for row in records.itertuples():
        value, n, auc = RECORDED_CELLS[(row.attack, row.member)]
        close(row.value, value)
        assert row.n == n
        assert math.isnan(row.auc) if auc is None else row.auc == pytest.approx(auc, rel=RTOL)


def test_sje_disagreement_scores_as_before():
    model = tiny_classifier(in_channels=3, size=16, num_classes=5, seed=2)
    g = torch.Generator().manual_seed(4)
    torch.randn(16, 5, generator=g)  # the recorded run drew these first
    phi = torch.rand(5, 7, generator=g)
    sje = SJE(phi, feature_dim=16, W=torch.randn(16, 7, generator=g))
    x = torch.rand(10, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    close(SJEDisagreement(model, fpr=0.1, sje=sje).score(x),
          [1.1163236, 1.1035266, 1.0828359, 1.0907264, 1.0941734, 1.0832511, 1.1042531, 1.12126, 1.1333206, 1.1420436])


def test_heat_and_blur_adaptive_attack_is_the_former_function(digits):
    model, _, _, x, y, _, _ = digits
    attack = get_attack("adaptive_hb", model, defense=HeatAndBlur(model, threshold="topk", top=0.05),
                        attack=PGD(model, eps=8 / 255, alpha=2 / 255, steps=5), iterations=2, eps=8 / 255)
    assert isinstance(attack, AdaptiveHeatAndBlur)
    full = attack.run(x, y)
    assert full.x_adapt.double().sum().item() == pytest.approx(313.23347, rel=RTOL)
    assert full.success.tolist() == [True, True, True, False, True, True, True, True]
    assert full.iterations.tolist() == [1, 1, 1, 2, 1, 1, 1, 1]
    assert full.pred_defended.tolist() == [1, 4, 6, 4, 4, 4, 0, 0]
    close(full.confidence, [0.54799747, 0.29947007, 0.26956904, 0.5421207, 0.32992265, 0.29168981, 0.22365522,
                            0.34333146])
    # called like every attack: success means the undefended model is fooled (what the arena counted)
    res = attack(x, y)
    assert torch.equal(res.x_adv, full.x_adapt)
    assert res.success.tolist() == full.fooled_plain.tolist() == [True, True, True, False, False, False, True, True]
    assert res.pred.tolist() == [1, 8, 0, 4, 6, 7, 0, 0]
    close(res.confidence, [0.31451792, 0.24282545, 0.25613189, 0.54796594, 0.56290084, 0.29141024, 0.25849879,
                           0.26730403])
    assert torch.equal(res.extras["defended_success"], full.success)
    assert res.linf.max() <= 8 / 255 + 1e-6


@pytest.mark.parametrize("squeezer, total, success", [
    ("median_3x3", 342.78147, [True, False, False, False, False, True, True, False]),
    ("bit_depth_2", 348.85423, [True, False, True, True, False, True, True, False])])
def test_adaptive_adv2_by_name_is_the_former_factory(digits, squeezer, total, success):
    model, _, _, x, y, _, _ = digits
    kw = dict(eps=0.1, alpha=0.01, warm_steps=3, steps=4, lam=5.0, confidence=0.5)
    res = get_attack("adaptive_adv2_fs", model, interpreter="cam", squeezer=squeezer, sqz_weight=2.0, plus_steps=3,
                     **kw)(x, y, (y + 1) % 10)
    assert res.x_adv.double().sum().item() == pytest.approx(total, rel=RTOL)
    assert res.success.tolist() == success


def test_feature_squeezing_thresholds_use_the_shared_rule(digits):
    """Its own rule was the ``1 - fpr`` quantile ('higher'): the same threshold wherever ``floor(fpr n)`` equals
    ``floor(fpr (n - 1))``, as at chapter 3's sizes (8 and 64 images at 5 %); the shared rule flags
    ``floor(fpr n)``, one image more where they differ (20 images at 10 %: 2, not 1)."""
    model, xt, _, _, _, calib, pgd = digits
    det = FeatureSqueezing(model, ["bit_depth_3", "median_3x3"], fpr=0.05)
    for n in (8, 64):
        benign = xt[300:300 + n]
        det.calibrate(benign)
        former = torch.quantile(det.score(benign), 0.95, interpolation="higher").item()
        assert det.threshold == former and det.benign_calibration_rate <= 0.05
    det.calibrate(calib, fpr=0.1)
    assert det.fpr == 0.1 and det.threshold == pytest.approx(0.46157303, rel=RTOL)  # the shared rule: 2 of 20
    former = torch.quantile(det.score(calib), 0.9, interpolation="higher").item()
    assert former == pytest.approx(0.58939594, rel=RTOL)  # the former rule: 1 of 20
    assert (det.score(calib) > det.threshold).sum() == 2 and (det.score(calib) > former).sum() == 1
    parts = det.squeezer_scores(pgd.x_adv)
    assert torch.equal(parts["joint"], torch.maximum(parts["bit_depth_3"], parts["median_3x3"]))
    close(det.score(pgd.x_adv), FS_SCORES)


def test_auc_is_scikit_learns_and_counts_ties_half():
    g = torch.Generator().manual_seed(0)
    b = torch.randint(0, 4, (30,), generator=g).double()  # heavily tied, as -rho is
    a = torch.randint(1, 5, (17,), generator=g).double()
    pairwise = ((a[:, None] > b[None, :]).double().mean() + 0.5 * (a[:, None] == b[None, :]).double().mean()).item()
    assert arena.auc(b, a) == pytest.approx(pairwise, abs=1e-12)
    assert math.isnan(arena.auc(b, torch.zeros(0)))


# --------------------------------------------------------------------------- the protocol itself


class Brightness(Detector):
    name = "brightness"

    def _score(self, x):
        return x.flatten(1).mean(1)


class Learned(Brightness):
    """A supervised toy: it learns the mean brightness of the benign images and scores the distance to it."""

    name = "learned"
    supervised = True

    def fit(self, benign, adversarial=None):
        self.centre = benign.mean().item()
        self._fitted_on(benign, adversarial)
        return self

    def _score(self, x):
        return (x.flatten(1).mean(1) - self.centre).abs()


def test_detector_lifecycle_and_its_errors():
    model = tiny_classifier(in_channels=3, size=8)
    g = torch.Generator().manual_seed(1)
    benign, other, bright = torch.rand(20, 3, 8, 8, generator=g) * 0.5, torch.rand(20, 3, 8, 8, generator=g) * 0.5, \
        0.5 + torch.rand(4, 3, 8, 8, generator=g) * 0.5
    det = Brightness(model, fpr=0.1)
    assert det.fitted and det.fit(benign) is det  # nothing to learn
    with pytest.raises(RuntimeError, match="not calibrated; call calibrate"):
        det.detect(bright)
    assert det.calibrate(benign) is det and det.benign_calibration_rate == pytest.approx(0.1)
    assert det.detect(bright).all() and det.detection_rate(bright) == 1.0
    assert det.score(torch.zeros(0, 3, 8, 8)).shape == (0,) and math.isnan(det.detection_rate(torch.zeros(0, 3, 8, 8)))
    with pytest.raises(ValueError, match=r"images must be in \[0, 1\]"):
        det.score(bright + 1)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        det.score(bright[0])
    with pytest.raises(ValueError, match="at least two"):
        det.calibrate(benign[:1])
    with pytest.raises(ValueError, match=r"fpr .* must be in \[0, 1\)"):
        det.calibrate(benign, fpr=1.0)
    learned = Learned(model, fpr=0.1)
    with pytest.raises(RuntimeError, match="not fitted; call fit"):
        learned.calibrate(other)
    learned.fit(benign, bright)
    with pytest.raises(ValueError, match="3 of the 20 calibration images were used to fit"):
        learned.calibrate(torch.cat([other[:17], benign[:3]]))
    with pytest.raises(ValueError, match="1 of the 20 calibration images"):
        learned.calibrate(torch.cat([other[:19], bright[:1]]))  # adversarial training images count too
    learned.calibrate(other)
    assert learned.detect(bright).all()
    learned.fit(other)  # refitting drops the threshold calibrated for the former fit
    assert learned.threshold is None


def test_threshold_rule():
    scores = torch.arange(100, dtype=torch.float64)
    assert threshold_at_fpr(scores, 0.05) == 94.0 and detection_rate(scores, 94.0) == pytest.approx(0.05)
    tied = torch.cat([torch.zeros(90), torch.ones(10)])
    assert threshold_at_fpr(tied, 0.05) == 1.0 and threshold_at_fpr(tied, 0.10) == 0.0
    with pytest.raises(ValueError, match="NaN"):
        threshold_at_fpr(torch.tensor([0.0, float("nan")]), 0.05)


def test_defenses_predict_and_purify():
    model = tiny_classifier(in_channels=3, size=24)
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(5, 3, 24, 24, generator=g), torch.arange(5)
    hb = HeatAndBlur(model, batch_size=2)
    clean = hb.clean(x)
    assert torch.equal(hb.purify(x), clean.x_clean.cpu()) and torch.equal(hb.predict(x), clean.pred.cpu())
    assert torch.equal(hb.predict(x), model(hb.purify(x)).argmax(1))
    assert hb.accuracy(x, y) == (hb.predict(x) == y).double().mean().item()
    none = Undefended(model)
    assert torch.equal(none.predict(x), model(x).argmax(1)) and math.isnan(none.accuracy(x[:0], y[:0]))
    with pytest.raises(NotImplementedError, match="has predict, not purify"):
        none.purify(x)
    assert isinstance(hb, Defense) and hb.fit(x) is hb
    assert hb.predict(torch.zeros(0, 3, 24, 24)).shape == (0,)


def test_adaptive_attacks_are_registered_by_name():
    assert {"adaptive_adv2_fs", "adaptive_hb", "adaptive_aid", "interpretation_pgd"} <= set(ATTACKS.names())
    model = tiny_classifier(in_channels=3, size=16)
    fs = FeatureSqueezing(model, ["median_3x3"])
    attack = get_attack("adaptive_adv2_fs", model, interpreter="cam", squeezer=fs, budget="smoke")
    assert attack.squeezer.name == "median_3x3"
    with pytest.raises(ValueError, match="evades one squeezer"):
        get_attack("adaptive_adv2_fs", model, squeezer=FeatureSqueezing(model, ["median_3x3", "bit_depth_2"]))
    with pytest.raises(ValueError, match="attack_params go to an attack given by name"):
        get_attack("adaptive_hb", model, attack=PGD(model), attack_params={"steps": 2})
    with pytest.raises(ValueError, match="must defend the attacked model"):
        get_attack("adaptive_hb", model, defense=HeatAndBlur(tiny_classifier(in_channels=3, size=16)))
    with pytest.raises(ValueError, match="iterations must be a positive integer"):
        get_attack("adaptive_hb", model, iterations=0)
    assert get_attack("interpretation_pgd", model, eps=0.03, steps=2)(*_batch(model)).x_adv.shape == (3, 3, 16, 16)


def _batch(model):
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    return x, model(x).argmax(1)


def test_module_device():
    assert module_device(tiny_classifier()) == torch.device("cpu")
    assert module_device(nn.Linear(2, 2)) == torch.device("cpu")  # parameters only
    assert module_device(nn.ReLU()) == torch.device("cpu")  # neither: runs where its input is
    if torch.cuda.is_available():
        assert module_device(nn.Linear(2, 2).cuda()).type == "cuda"
