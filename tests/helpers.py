"""Small models for unit tests (seconds to build; the smoke models in the session's cache)."""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from advxai.models import Classifier, ModelInfo
from advxai.models.small import GAPHead


class TinyCNN(nn.Module):
    def __init__(self, in_channels=1, num_classes=10, width=8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
        )
        self.cam = nn.ReLU()
        self.head = GAPHead(2 * width, num_classes)

    def forward(self, x):
        return self.head(self.cam(self.features(x)))


def tiny_classifier(in_channels=1, size=16, num_classes=10, seed=0, width=8) -> Classifier:
    torch.manual_seed(seed)
    net = TinyCNN(in_channels, num_classes, width)
    info = ModelInfo(name="tiny", dataset="test", input_size=(in_channels, size, size),
                     class_names=[str(i) for i in range(num_classes)], mean=(0.5,) * in_channels,
                     std=(0.5,) * in_channels, cam_layer="cam", feature_layer="head.pool", classifier_layer="head.fc")
    return Classifier(net, info)


def batch(model: Classifier, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    c, h, w = model.info.input_size
    x = torch.rand(n, c, h, w, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    return x, y


@contextlib.contextmanager
def one_thread():
    """Torch on one CPU thread inside the block: a model trained here has the same weights, to the last bit,
    whatever thread count the tests run with (a reduction split over two threads rounds differently)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def smoke_model(name: str) -> Classifier:
    """The smoke-budget embedded model ``name``, trained on one thread the first time a test session asks
    (into the session's own cache, see conftest), then loaded."""
    from advxai.models import get_model

    with one_thread():
        return get_model(name, device="cpu", train_budget="smoke")


def trained_digits_classifier() -> Classifier:
    """The smoke-budget ``digits_cnn`` (trained once per session in seconds, then cached; ~95 % accuracy)."""
    return smoke_model("digits_cnn")


def digits16(split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """The digits data set's images area-averaged to 16x16, and their labels."""
    from advxai.data import get_dataset

    d = get_dataset("digits", split)
    b = d.batch(torch.arange(len(d)))
    return F.interpolate(b.x, size=(16, 16), mode="area"), b.y


def small_digits_cnn(epochs: int = 16, seed: int = 0, lr: float = 3e-3) -> Classifier:
    """:class:`TinyCNN` (a GAP head, so CAM works) trained on 16x16 digits with Adam, batches of 32, on one
    thread: about two seconds, about 65 % test accuracy, and the same weights in every session. Values
    recorded from it stay valid across machines' thread counts."""
    x, y = digits16("train")
    with one_thread():
        model = tiny_classifier(in_channels=1, size=16, seed=seed)
        net = model.net
        net.requires_grad_(True)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        g = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=g)
            for s in range(0, len(order), 32):
                idx = order[s:s + 32]
                opt.zero_grad()
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
        net.requires_grad_(False)
    return model.eval()


def digits_batch(model: Classifier, n=16, seed=0, correct_only=True):
    """Test digits (correctly classified ones when asked) and their labels."""
    from advxai.data import get_dataset

    test = get_dataset("digits", "test")
    b = test.batch(test.sample_indices(min(len(test), 4 * n), seed=seed))
    if correct_only:
        with torch.no_grad():
            keep = model(b.x).argmax(1) == b.y
        b.x, b.y = b.x[keep], b.y[keep]
    return b.x[:n], b.y[:n]


def small_digits_mlp(hidden=48, epochs=60, seed=0) -> Classifier:
    """A two-layer perceptron on the digits, trained in about a second (full-batch Adam; ~95 % test accuracy).

    Fast enough to run optimisation attacks (C&W, DeepFool, patches) against their oracles in seconds,
    and input-sensitive enough (unlike a random network) for targeted attacks to mean something.
    """
    from advxai.data import get_dataset

    torch.manual_seed(seed)
    train = get_dataset("digits", "train")
    b = train.batch(torch.arange(len(train)))
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    info = ModelInfo(name="digits_mlp", dataset="digits", input_size=(1, 28, 28),
                     class_names=[str(i) for i in range(10)], mean=(0.12,), std=(0.27,), cam_layer="1",
                     feature_layer="2", classifier_layer="3", gap_head=False)
    model = Classifier(net, info)
    net.requires_grad_(True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(b.x), b.y).backward()
        opt.step()
    net.requires_grad_(False)
    return model.eval()
