"""SJE, attribute selection and distances, grounding (advxai.attributes)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from advxai.attributes.analysis import (attribute_distances, changed_attribute_mask, masked_distance,
                                        select_attributes)
from advxai.attributes.grounding import (AnnotationDetector, CUBPartDetector, Detections, Detector,
                                         GradCAMLocaliser, Localiser, attribute_part_boxes, box_iou,
                                         boxes_from_masks, cub_attribute_parts, ground, grounding_scores,
                                         peak_in_box)
from advxai.attributes.sje import SJE, SJEConfig, extract_features, normalize_class_attributes
from advxai.data import InMemoryImageDataset
from advxai.map_metrics import box_iou as box_iou_inclusive

from .helpers import tiny_classifier


# --------------------------------------------------------------------------- SJE


def toy_problem(n_per_class=40, k=5, d=16, e=8, seed=0, spread=0.3):
    """Linearly separable features: one Gaussian cluster per class; random positive class attributes."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 2
    y = torch.arange(k).repeat_interleave(n_per_class)
    x = centres[y] + spread * torch.randn(len(y), d, generator=g)
    phi = torch.rand(k, e, generator=g) + 0.05
    return x, y, phi


def test_sje_learns_a_separable_toy_problem():
    x, y, phi = toy_problem()
    xt, yt, _ = toy_problem(seed=0, n_per_class=20)  # same centres and attributes, new draws below
    g = torch.Generator().manual_seed(1)
    xt = xt + 0.3 * torch.randn(xt.shape, generator=g)
    sje = SJE(phi, feature_dim=16)
    before = sje.accuracy(x, y)
    history = sje.fit(x, y, SJEConfig(epochs=15, lr=0.05, seed=0))
    assert history[-1]["train_accuracy"] == 1.0
    assert history[-1]["mistake_rate"] <= history[0]["mistake_rate"]
    assert sje.accuracy(xt, yt) >= 0.95
    assert before < 0.6
    assert sje.loss(x, y).mean() < 0.05


def test_sje_update_matches_the_paper_by_hand():
    # φ rows (3, 4) and (1, 0) normalise to (0.6, 0.8) and (1, 0).
    sje = SJE(torch.tensor([[3.0, 4.0], [1.0, 0.0]]), feature_dim=2, margin=1.0)
    assert torch.allclose(sje.phi, torch.tensor([[0.6, 0.8], [1.0, 0.0]]))
    x, y = torch.tensor([[1.0, 2.0]]), torch.tensor([0])
    # W = 0: scores 0, augmented (0, 1): ŷ = 1 != y, a mistake; W += 0.5 x (φ0 - φ1)ᵀ = 0.5 [1, 2]ᵀ [-0.4, 0.8]
    mistake = sje.sgd_step(x, y, lr=0.5)
    assert mistake.tolist() == [True]
    expected = torch.tensor([[-0.2, 0.4], [-0.4, 0.8]])
    assert torch.allclose(sje.W, expected)
    # now xW = (-1, 2): F(x, 0) = 1.0, F(x, 1) = -1.0; augmented (1.0, 0.0): ŷ = y, no update
    assert torch.allclose(sje.compatibility(x), torch.tensor([[1.0, -1.0]]))
    assert sje.loss(x, y).item() == 0.0
    assert sje.sgd_step(x, y, lr=0.5).tolist() == [False]
    assert torch.allclose(sje.W, expected)
    # predicted attributes: xW / |xW| = (-1, 2) / sqrt(5)
    assert torch.allclose(sje.predict_attributes(x), torch.tensor([[-1.0, 2.0]]) / math.sqrt(5))


def test_minibatch_step_is_the_sum_of_per_sample_steps_from_one_w():
    x, y, phi = toy_problem(n_per_class=3, k=4, d=6, e=5)
    W0 = torch.randn(6, 5, generator=torch.Generator().manual_seed(3))
    batch = SJE(phi, 6, W=W0.clone())
    batch.sgd_step(x, y, lr=0.1)
    total = torch.zeros_like(W0)
    for i in range(len(x)):
        one = SJE(phi, 6, W=W0.clone())
        one.sgd_step(x[i:i + 1], y[i:i + 1], lr=0.1)
        total += one.W - W0
    assert torch.allclose(batch.W - W0, total, atol=1e-6)


def test_predict_is_the_nearest_class_embedding():
    x, y, phi = toy_problem(n_per_class=10)
    sje = SJE(phi, 16, W=torch.randn(16, 8, generator=torch.Generator().manual_seed(0)))
    z = sje.predict_attributes(x)
    nearest = torch.cdist(z, normalize_class_attributes(phi)).argmin(1)
    assert torch.equal(sje.predict(x), nearest)
    assert torch.allclose(z.norm(dim=1), torch.ones(len(x)))


def test_sje_state_round_trip_and_determinism():
    x, y, phi = toy_problem()
    a, b = SJE(phi, 16), SJE(phi, 16)
    cfg = SJEConfig(epochs=3, lr=0.05, batch_size=4, seed=7)
    a.fit(x, y, cfg)
    b.fit(x, y, cfg)
    assert torch.equal(a.W, b.W)
    c = SJE.from_state(a.state_dict())
    assert torch.equal(c.predict(x), a.predict(x))


def _dataset(class_attributes=None, attribute_names=None):
    return InMemoryImageDataset(name="toy", split="test", classes=["a", "b"], labels=torch.tensor([0, 1]),
                                images=torch.zeros(2, 3, 8, 8, dtype=torch.uint8),
                                class_attributes=class_attributes, attribute_names=attribute_names)


def test_sje_bad_input():
    phi = torch.rand(3, 4) + 0.1
    with pytest.raises(ValueError, match="4 attributes, expected 5"):
        SJE(phi, 8, attribute_names=[f"a{i}" for i in range(5)])
    with pytest.raises(ValueError, match="has no class attribute vectors; SJE needs a data set with attributes"):
        SJE.for_dataset(_dataset(), 8)
    with pytest.raises(ValueError, match="3 attributes, expected 2"):
        SJE.for_dataset(_dataset(torch.rand(2, 3), ["x", "y"]), 8)
    with pytest.raises(ValueError, match="3 rows, expected one per class"):
        SJE.for_dataset(_dataset(torch.rand(3, 2) + 0.1, ["x", "y"]), 8)
    with pytest.raises(ValueError, match="all-zero attribute vector"):
        SJE(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), 4)
    sje = SJE(phi, 8)
    with pytest.raises(ValueError, match=r"features must be \[B, 8\]"):
        sje.predict(torch.rand(2, 7))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        sje.loss(torch.rand(2, 8), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="W must be"):
        SJE(phi, 8, W=torch.zeros(8, 5))
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        SJEConfig(epochs=0)


def test_sje_on_model_features_and_shapes_dataset():
    from advxai.data.shapes import load_shapes_dataset

    ds = load_shapes_dataset("test", n=16, use_cache=False)
    model = tiny_classifier(in_channels=3, size=64, num_classes=ds.num_classes)
    feats = extract_features(model, ds.batch(torch.arange(16)).x, batch_size=5)
    assert feats.shape == (16, 16)
    sje = SJE.for_dataset(ds, feature_dim=feats.shape[1])
    assert sje.num_attributes == 28 and sje.num_classes == 20
    assert sje.predict(feats).shape == (16,)


# --------------------------------------------------------------------------- analysis


def test_select_attributes_eq_16_17():
    z = torch.tensor([[0.5, 0.1, 0.9, 0.3]])
    phi_other = torch.tensor([[0.0, 0.5, 0.2, 0.0]])
    # z - φ = (0.5, -0.4, 0.7, 0.3): order 2, 0, 3
    assert select_attributes(z, phi_other, 3).tolist() == [[2, 0, 3]]
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 4\]"):
        select_attributes(z, phi_other, 5)


def test_changed_mask_and_distances_by_hand():
    z_clean = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0]])
    z_adv = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.1]])
    mask = changed_attribute_mask(z_clean, z_adv, fraction=0.4)  # 2 of 5: attributes 0 and 2
    assert mask.tolist() == [[True, False, True, False, False]]
    assert masked_distance(z_clean, z_adv, mask).item() == pytest.approx(math.sqrt(2))
    assert masked_distance(z_clean, z_adv).item() == pytest.approx(math.sqrt(2.01))
    g = changed_attribute_mask(torch.cat([z_clean, z_clean]), torch.cat([z_adv, z_clean]), 0.2, scope="global")
    assert g.sum(1).tolist() == [1, 1] and g[0].nonzero().flatten().tolist() in ([0], [2])


def test_attribute_distance_panels():
    phi = torch.eye(3)  # three classes, attribute i belongs to class i
    y = torch.tensor([0, 0, 1])
    z_clean = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]])
    z_adv = torch.tensor([[0.6, 0.8, 0], [0.8, 0.6, 0], [0, 1.0, 0]])
    pred_clean, pred_adv = torch.tensor([0, 0, 1]), torch.tensor([1, 0, 1])  # only image 0 flips
    a = attribute_distances("a", phi, y, z_clean=z_clean, z_adv=z_adv, pred_adv=pred_adv, pred_clean=pred_clean,
                            fraction=1.0)
    assert a["index"].tolist() == [0]
    assert a["d1"].item() == pytest.approx(math.sqrt(0.16 + 0.64))
    assert a["d2"].item() == pytest.approx(math.sqrt(2))
    c = attribute_distances("c", phi, y, z_clean=z_clean, z_adv=z_adv, pred_adv=pred_adv, pred_clean=pred_clean,
                            fraction=1.0)
    assert c["d1"].item() == pytest.approx(math.sqrt(0.36 + 0.04))  # to φ(y) = (0, 1, 0)
    assert c["d2"].item() == pytest.approx(math.sqrt(0.16 + 0.64))  # to φ(y_n) = (1, 0, 0)
    z_at = torch.tensor([[0.9, 0.1, 0.0], [1.0, 0, 0], [0, 0, 1.0]])
    pred_at = torch.tensor([0, 0, 2])
    b = attribute_distances("b", phi, y, z_adv=z_adv, pred_adv=pred_adv, z_adv_at=z_at, pred_adv_at=pred_at,
                            fraction=1.0)
    assert b["index"].tolist() == [0]
    assert b["d1"].item() == pytest.approx(math.sqrt(0.09 + 0.49))
    d = attribute_distances("d", phi, y, z_adv=z_adv, pred_adv=pred_adv, z_adv_at=z_at, pred_adv_at=pred_at,
                            z_clean_at=z_clean, fraction=1.0)
    assert d["index"].tolist() == [2]  # the AT model gets image 2 wrong (class 2)
    assert d["d1"].item() == pytest.approx(0.0) and d["d2"].item() == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="panel d needs"):
        attribute_distances("d", phi, y, z_adv=z_adv, pred_adv=pred_adv, z_adv_at=z_at, pred_adv_at=pred_at)
    with pytest.raises(ValueError, match="panel must be one of"):
        attribute_distances("e", phi, y, z_adv=z_adv, pred_adv=pred_adv)


# --------------------------------------------------------------------------- grounding


class PerfectLocaliser:
    def __init__(self, boxes):
        self.boxes = boxes

    def localise(self, x, attributes):
        return self.boxes


def test_box_iou_agrees_with_the_inclusive_scalar_version():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 30, size=(50, 4))
    b = rng.integers(0, 30, size=(50, 4))
    a[:, 2:] = a[:, :2] + rng.integers(0, 10, size=(50, 2))
    b[:, 2:] = b[:, :2] + rng.integers(0, 10, size=(50, 2))
    ours = box_iou(torch.tensor(a, dtype=torch.float32) + torch.tensor([0, 0, 1, 1]),
                   torch.tensor(b, dtype=torch.float32) + torch.tensor([0, 0, 1, 1]))
    ref = [box_iou_inclusive(tuple(p), tuple(q)) for p, q in zip(a, b)]
    assert np.allclose(ours.numpy(), ref, atol=1e-6)
    assert box_iou(torch.tensor([float("nan"), 0, 1, 1]), torch.tensor([0.0, 0, 1, 1])).item() == 0.0


def test_grounding_iou_is_one_for_a_perfect_localiser_and_zero_for_a_disjoint_one():
    from advxai.data.shapes import load_shapes_dataset

    ds = load_shapes_dataset("test", n=6, use_cache=False)
    b = ds.batch(torch.arange(6))
    selected = torch.tensor([[0, 8, 12], [27, 4, 16]]).repeat(3, 1)  # body, head, wing / tail, body, wing
    truth = attribute_part_boxes(b.part_boxes, ds.attribute_parts, selected)
    assert not torch.isnan(truth).any()
    perfect = PerfectLocaliser(truth.clone())
    assert isinstance(perfect, Localiser)
    s = grounding_scores(perfect.localise(b.x, selected), truth)
    assert torch.all(s["iou"] == 1.0) and s["hit"].all()
    disjoint = truth.clone()
    disjoint[..., [0, 2]] = truth[..., [0, 2]] + 200.0  # moved right, off the image
    s = grounding_scores(disjoint, truth)
    assert torch.all(s["iou"] == 0.0) and not s["hit"].any()


def test_boxes_from_masks():
    m = torch.zeros(2, 8, 10, dtype=torch.bool)
    m[0, 2:5, 3:7] = True
    boxes = boxes_from_masks(m)
    assert boxes[0].tolist() == [3.0, 2.0, 7.0, 5.0]
    assert torch.isnan(boxes[1]).all()


def test_annotation_detector_grounds_exactly_the_present_attributes():
    from advxai.data.shapes import load_shapes_dataset

    ds = load_shapes_dataset("test", n=8, use_cache=False)
    b = ds.batch(torch.arange(8))
    det = AnnotationDetector.for_dataset(ds)
    assert isinstance(det, Detector)
    detections = det.detect(b)
    selected = torch.arange(28).expand(8, -1)
    grounded, boxes = ground(selected, detections)
    assert torch.equal(grounded, b.attributes > 0.5)
    part = torch.tensor(ds.attribute_parts)
    expected = b.part_boxes[:, part]  # [B, 28, 4]
    assert torch.allclose(boxes[grounded], expected[grounded])
    assert torch.isnan(boxes[~grounded]).all()


def test_ground_prefers_the_best_scoring_detection():
    d = Detections(boxes=torch.tensor([[[0.0, 0, 2, 2], [5.0, 5, 9, 9], [1.0, 1, 3, 3]]]),
                   attributes=torch.tensor([[4, 4, -1]]), scores=torch.tensor([[0.2, 0.9, 1.0]]))
    grounded, boxes = ground(torch.tensor([[4, 1]]), d)
    assert grounded.tolist() == [[True, False]]
    assert boxes[0, 0].tolist() == [5.0, 5, 9, 9] and torch.isnan(boxes[0, 1]).all()


def test_gradcam_localiser_returns_boxes_inside_the_image():
    model = tiny_classifier(in_channels=3, size=32, num_classes=4)
    sje = SJE(torch.rand(4, 6) + 0.1, feature_dim=16, W=torch.randn(16, 6, generator=torch.Generator().manual_seed(0)))
    loc = GradCAMLocaliser(model, sje, threshold=0.5, batch_size=4)
    x = torch.rand(3, 3, 32, 32)
    attrs = torch.tensor([[0, 5], [1, 2], [3, 3]])
    maps = loc.maps(x, attrs)
    assert maps.shape == (3, 2, 32, 32) and torch.isfinite(maps).all()
    boxes = loc.localise(x, attrs)
    assert boxes.shape == (3, 2, 4)
    ok = ~torch.isnan(boxes).any(-1)
    assert ok.any()
    assert (boxes[ok][:, :2] >= 0).all() and (boxes[ok][:, 2:] <= 32).all()
    assert (boxes[ok][:, 2:] > boxes[ok][:, :2]).all()
    # the same attribute on the same image gives the same map whatever batch it is in
    assert torch.allclose(maps[2, 0], maps[2, 1], atol=1e-6)


def test_cub_part_detector_on_a_fake_batch():
    names = ["has_bill_shape::curved", "has_wing_color::blue", "has_size::small", "has_upper_tail_color::red"]
    parts = cub_attribute_parts(names)
    assert parts[0].nonzero().flatten().tolist() == [1]  # beak
    assert parts[1].nonzero().flatten().tolist() == [8, 12]  # both wings
    assert parts[2].all()  # size: the whole bird
    assert parts[3].nonzero().flatten().tolist() == [13]  # tail, not "upperparts"
    locs = torch.zeros(1, 15, 3)
    locs[0, 1] = torch.tensor([100.0, 50.0, 1.0])  # beak
    locs[0, 8] = torch.tensor([40.0, 80.0, 1.0])  # left wing
    det = CUBPartDetector(names, half=10)
    batch = {"part_locs": locs, "attributes": torch.tensor([[1.0, 1.0, 0.0, 1.0]])}
    d = det.detect(batch)
    grounded, boxes = ground(torch.tensor([[0, 1, 2, 3]]), d)
    assert grounded.tolist() == [[True, True, False, False]]  # size not annotated, tail not visible
    assert boxes[0, 0].tolist() == [90.0, 40.0, 110.0, 60.0]
    # resize shorter side 300 -> 256 then centre crop 224 of a 400x300 image
    mapped = CUBPartDetector.to_input_pixels(torch.tensor([[[200.0, 150.0, 1.0], [5.0, 5.0, 1.0]]]),
                                             torch.tensor([[400, 300]]), image_size=224, resize_to=256)
    assert mapped[0, 0, :2].tolist() == pytest.approx([200 * 341 / 400 - 58, 150 * 256 / 300 - 16], abs=1e-4)
    assert mapped[0, 1, 2].item() == 0.0  # cropped away


def test_cub_detector_for_the_cub_adapter(tmp_path):
    from advxai.data import get_dataset

    from .test_data import _fake_cub

    _fake_cub(tmp_path)
    ds = get_dataset("cub", "test", root=str(tmp_path), image_size=32)
    sje = SJE.for_dataset(ds, feature_dim=8)
    assert sje.num_attributes == 4
    det = CUBPartDetector.for_dataset(ds)
    b = ds.batch([0, 1])
    # 40x30 images: shorter side 30 -> 37, width 49, crop 32 from (8, 2): the parts at (3, 4) are cut away
    locs = det._input_locs(b)
    assert locs[0, 0, :2].tolist() == pytest.approx([3 * 49 / 40 - 8, 4 * 37 / 30 - 2], abs=1e-4)
    assert (locs[..., 2] == 0).all()
    grounded, boxes = ground(torch.arange(4).expand(2, -1), det.detect(b))
    assert not grounded.any() and torch.isnan(boxes).all()
    with pytest.raises(ValueError, match="no part locations"):
        CUBPartDetector.for_dataset(_dataset(torch.rand(2, 2) + 0.1, ["x", "y"]))


def test_pointing_game():
    maps = torch.zeros(2, 10, 10)
    maps[0, 3, 4] = 1.0  # peak at x = 4, y = 3
    maps[1, 9, 9] = 1.0
    boxes = torch.tensor([[4.0, 3.0, 6.0, 5.0], [0.0, 0.0, 5.0, 5.0]])
    assert peak_in_box(maps, boxes).tolist() == [True, False]
    assert peak_in_box(maps[:1], torch.full((1, 4), float("nan"))).tolist() == [False]


def test_study_steps_end_to_end_on_a_tiny_model():
    from advxai.attributes.pipeline import attack_and_embed, embed, fit_sje, select_and_ground
    from advxai.data.shapes import load_shapes_dataset

    ds = load_shapes_dataset("test", n=12, use_cache=False)
    model = tiny_classifier(in_channels=3, size=64, num_classes=ds.num_classes)
    sje, history = fit_sje(model, ds, torch.arange(12), SJEConfig(epochs=2, lr=0.1))
    assert len(history) == 2 and sje.feature_dim == 16
    b = ds.batch(torch.arange(6))
    clean = embed(model, sje, b.x)
    assert clean.z.shape == (6, 28) and torch.allclose(clean.z.norm(dim=1), torch.ones(6))
    adv = attack_and_embed(model, sje, b.x, b.y, eps=0.03, targeted=True, steps=3)
    assert (adv.target != b.y).all()
    assert (adv.x - b.x).abs().max() <= 0.03 + 1e-6 and adv.x.min() >= 0 and adv.x.max() <= 1
    out = select_and_ground(model, sje, ds, b, adv.x, adv.z, sje.phi.cpu()[b.y], k=3)
    assert out["selected"].shape == (6, 3) and out["grounded"].dtype == torch.bool
    assert out["maps"].shape == (6, 3, 64, 64) and out["iou"].shape == (6, 3) and out["pointing"].shape == (6, 3)
    # the grounded ones are exactly the selected attributes the images show
    assert torch.equal(out["grounded"], b.attributes.gather(1, out["selected"]) > 0.5)
