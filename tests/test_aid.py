"""AID (adversarial interpretation distillation) for RTS."""
from __future__ import annotations

import pytest
import torch

from advxai import map_metrics as mm
from advxai.attacks import ADV2, random_targets
from advxai.defenses.aid import AIDConfig, aid_loss, aid_rts
from advxai.interpreters.rts import RTS, RTSConfig, encoder_layers, train_rts

from .helpers import one_thread, smoke_model, tiny_classifier


@pytest.fixture(scope="module")
def shapes_rts():
    from advxai.data import get_dataset

    model = smoke_model("shapes_resnet")
    cfg = RTSConfig(steps=25, batch_size=8, lr=1e-2, width=16, fake_fraction=0.0)
    train = get_dataset("shapes", "train", n=300)
    with one_thread():
        payload = train_rts(model, encoder_layers(model), cfg, torch.device("cpu"), dataset=train, progress=False)
    return model, RTS(model, config=cfg, payload=payload), train


def test_aid_loss_is_minus_the_map_distance(shapes_rts):
    model, rts, train = shapes_rts
    b = train.batch(torch.arange(4))
    t = random_targets(b.y, model.info.num_classes, 0)
    loss = aid_loss(rts, b.x, b.y, b.x, t)
    expected = -(rts(b.x, target=b.y).extras["native"] - rts(b.x, target=t).extras["native"]).abs().flatten(1).mean(1)
    assert torch.allclose(loss, expected, atol=1e-6)
    assert torch.allclose(aid_loss(rts, b.x, b.y, b.x, b.y), torch.zeros(4))


def test_aid_makes_adv2_maps_differ_from_benign_ones(shapes_rts, tmp_cache):
    from advxai.data import get_dataset

    model, rts, train = shapes_rts
    cfg = AIDConfig(rounds=3, steps_per_round=6, batch_size=8, lr=3e-3, aid_weight=3.0, eps=0.05, alpha=0.01,
                    attack_warm_steps=5, attack_steps=8)
    distilled = aid_rts(rts, cfg, dataset=train, progress=False)
    assert distilled.aid_history["l_aid"] and len(distilled.aid_history["l_int"]) == 18
    # the original interpreter is untouched
    assert all(not p.requires_grad for p in rts.decoder.parameters())
    test = get_dataset("shapes", "test")
    b = test.batch(torch.arange(40))
    with torch.no_grad():
        keep = model(b.x).argmax(1) == b.y
    x, y = b.x[keep][:8], b.y[keep][:8]
    t = random_targets(y, model.info.num_classes, 3)
    distances = {}
    for name, interp in (("rts", rts), ("rts_aid", distilled)):
        adv = ADV2(model, interp, eps=0.05, alpha=0.01, warm_steps=5, steps=8, lam=5.0, enc_weight=0.1,
                   confidence=0.0)(x, y, t)
        assert torch.all(adv.linf <= 0.05 + 1e-6)
        distances[name] = mm.map_l1(interp(adv.x_adv, target=t).maps, interp(x, target=y).maps).mean().item()
    assert distances["rts_aid"] > distances["rts"]
    # the RTS objective on benign images is still being minimised alongside (not given up for l_aid)
    hist = distilled.aid_history["l_int"]
    assert sum(hist[-6:]) / 6 < 1.5 * sum(hist[:6]) / 6
    # cached: a second call loads the same decoder
    again = aid_rts(rts, cfg, dataset=train, progress=False)
    for p, q in zip(again.decoder.parameters(), distilled.decoder.parameters()):
        assert torch.equal(p, q)
    assert len(list((tmp_cache / "rts_aid").glob("*.pt"))) == 1


def test_rts_and_aid_train_in_the_training_precision_and_key_their_cache_on_it(shapes_rts, tmp_cache, monkeypatch):
    model, rts, train = shapes_rts
    cfg = RTSConfig(steps=3, batch_size=4, width=8)
    decoders = {p: train_rts(model, encoder_layers(model), cfg, torch.device("cpu"), dataset=train, progress=False,
                             precision=p)["state_dict"] for p in ("fp32", "bf16")}
    again = train_rts(model, encoder_layers(model), cfg, torch.device("cpu"), dataset=train, progress=False,
                      precision="bf16")["state_dict"]
    assert all(torch.equal(again[k], v) and v.dtype == torch.float32 for k, v in decoders["bf16"].items())
    assert any(not torch.equal(decoders["fp32"][k], v) for k, v in decoders["bf16"].items())
    with pytest.raises(ValueError, match="'bf16' or 'fp32'"):
        train_rts(model, encoder_layers(model), cfg, torch.device("cpu"), dataset=train, precision="half")
    payload = rts.state_dict_payload()
    assert RTS(model, config=rts.config, payload=payload, precision="bf16").cache_spec()["precision"] == "bf16"
    monkeypatch.setenv("ADVXAI_TRAIN_PRECISION", "fp32")
    assert RTS(model, config=rts.config, payload=payload).cache_spec()["precision"] == "fp32"
    # AID: one entry per precision
    aid = AIDConfig(rounds=1, steps_per_round=1, batch_size=4, attack_warm_steps=1, attack_steps=1)
    for p in ("fp32", "bf16"):
        distilled = aid_rts(rts, aid, dataset=train, progress=False, precision=p)
        assert len(distilled.aid_history["l_aid"]) == 1
    assert len(list((tmp_cache / "rts_aid").glob("*.pt"))) == 2


def test_aid_bad_input():
    with pytest.raises(ValueError, match="rounds"):
        AIDConfig(rounds=0)
    model = tiny_classifier(in_channels=3, size=16)
    from advxai.interpreters import get_interpreter

    with pytest.raises(ValueError, match="RTS"):
        aid_rts(get_interpreter("cam", model))
    with pytest.raises(ValueError, match="train_budget"):
        aid_rts(None, train_budget="huge")


def test_adaptive_aid_is_adv2_against_rts_aid_with_the_detectors_map_agreement(shapes_rts):
    from advxai.attacks import get_attack
    from advxai.attacks.adv2 import adv2_settings
    from advxai.defenses.aid import AdaptiveAID, AIDDetector, MapAgreement

    model, rts, train = shapes_rts
    control = RTS(model, config=rts.config, payload=rts.state_dict_payload())
    with torch.no_grad():  # a second decoder that draws different maps, standing in for RTS^A
        for p in control.decoder.parameters():
            p.mul_(0.5)
    detector = AIDDetector(model, rts=rts, rts_aid=control)
    b = train.batch(torch.arange(4))
    t = random_targets(b.y, model.info.num_classes, 1)
    settings = dict(eps=0.05, alpha=0.01, warm_steps=2, steps=3, seed=0)
    attack = get_attack("adaptive_aid", model, detector=detector, match_weight=5.0, budget="smoke", **settings)
    assert isinstance(attack, AdaptiveAID) and attack.interpreter is control
    composed = ADV2(model, control, terms=[(5.0, MapAgreement(rts, control))], **{**adv2_settings("rts", "smoke"),
                                                                                 **settings})
    assert torch.equal(attack(b.x, b.y, t).x_adv, composed(b.x, b.y, t).x_adv)
    with pytest.raises(ValueError, match="match_weight must be >= 0"):
        AdaptiveAID(model, detector, match_weight=-1.0)
    with pytest.raises(ValueError, match="watch the attacked model"):
        AdaptiveAID(tiny_classifier(in_channels=3, size=64), detector)


def test_aid_rounds_find_correct_images_among_many_wrong_ones_or_say_there_are_none(shapes_rts, tmp_cache):
    """A training set where few images are classified correctly still gives every round its attack
    (batches are drawn until enough are found); one with none gives a clear error, not an empty history."""
    from advxai.data.base import InMemoryImageDataset

    model, rts, train = shapes_rts
    b = train.batch(torch.arange(64))
    k = model.info.num_classes
    images = (b.x * 255).round().to(torch.uint8)

    def labelled(name, labels):
        return InMemoryImageDataset(name, "train", train.classes, labels, images=images)

    with torch.no_grad():  # the model's predictions on the uint8 round trip the data set serves
        pred = model(images.float() / 255).argmax(1)
    y = (pred + 1) % k  # every label wrong ...
    y[[5, 40]] = pred[[5, 40]]  # ... except two
    cfg = AIDConfig(rounds=2, steps_per_round=1, batch_size=2, attack_warm_steps=1, attack_steps=1)
    distilled = aid_rts(rts, cfg, dataset=labelled("mostly-wrong", y), progress=False)
    assert len(distilled.aid_history["adv_success"]) == 2 and len(distilled.aid_history["l_aid"]) == 2
    with pytest.raises(ValueError, match="classifies none of the 64 training images"):
        aid_rts(rts, cfg, dataset=labelled("all-wrong", (pred + 1) % k), progress=False)
    assert not list((tmp_cache / "rts_aid").glob("*.tmp*"))
