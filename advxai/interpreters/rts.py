"""RTS: real-time saliency (Dabkowski & Gal), the model-guided interpreter of ADV².

A masking model predicts, in one forward pass, the saliency mask of class ``c`` for an image:

* **encoder**: the classifier's own (frozen) feature maps at several scales, from the last
  convolutional map (7x7 on ResNet-50, 8x8 on the ``shapes`` models) up to stride 4;
* **decoder** (:class:`RTSDecoder`): U-Net style; at the coarsest scale a **class selector** (a
  learned embedding of ``c``) multiplies the features; each step up doubles the resolution and
  merges the encoder's features of that scale; a sigmoid gives the mask at stride 4 (56x56 at
  224 pixels, 16x16 at 64).

The decoder is trained on the classifier's training data to minimise Eq. 8 of Zhang et al.:

    l1 TV(m) + l2 AV(m) - log p_c(phi(x; m)) + l3 p_c(phi(x; 1 - m))^l4,

where ``phi(x; m) = m x + (1 - m) A`` blends the image with an alternative ``A`` drawn per image
(a strong blur, a random constant colour, or noise), ``TV`` penalises squared differences of
neighbouring mask values and ``AV`` is the mask's mean. As in Dabkowski & Gal, a fraction of the
training images get a wrong ("fake") class in the selector, for which only the area and
smoothness terms apply, so the mask of a class that is not there is empty. The trained decoder
is cached per classifier (keyed by its weights, every training setting and the training
precision) under ``$ADVXAI_CACHE/rts``; ``train_budget="smoke"`` trains briefly for CI. Like the
embedded models it trains in bfloat16 mixed precision where the hardware computes it natively
(:func:`~advxai.models.training.training_precision`); the maps it then gives are computed in fp32.

The encoder can be another classifier (``encoder=``): Dabkowski & Gal used a ResNet-50 encoder
for any black box. With the classifier as its own encoder (the default), the encoder loss
``l_enc`` of ADV² coincides with the prediction loss.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

# model_digest (the digest a cached decoder was trained for) is the runtime's, re-exported here for
# callers that import it from this module; its value is unchanged, so cached decoders stay valid.
from ..models.training import autocast, check_precision, training_precision
from ..runtime import cached, model_digest, resolve_device
from .base import Explanation, Interpreter, upsample_to
from .ops import gaussian_blur, total_variation

__all__ = ["RTS", "RTSDecoder", "RTSConfig", "encoder_layers", "rts_objective", "train_rts", "model_digest"]

# Encoder layers (coarse -> fine) of the models we know; other models fall back to a search.
KNOWN_LAYERS = {
    "shapes_resnet": ["layer3", "layer2"],
    "shapes_densenet": ["cam", "blocks.2"],
    "resnet50": ["layer4", "layer3", "layer2", "layer1"],
    "resnet152": ["layer4", "layer3", "layer2", "layer1"],
    "densenet169": ["cam", "features.denseblock3", "features.denseblock2", "features.denseblock1"],
}


def encoder_layers(model, stride: int = 4) -> list[str]:
    """Names of the encoder's feature maps, coarse to fine, from the CAM layer down to ``stride``.

    Known models use a fixed list; otherwise, for each resolution between the CAM layer's and
    H/``stride``, the outermost module (fewest dots in its name) producing it, the last one to run.
    """
    info = model.info
    if info.name in KNOWN_LAYERS:
        return list(KNOWN_LAYERS[info.name])
    c, h, w = info.input_size
    fired: list[tuple[str, tuple[int, int]]] = []
    handles = []
    for name, module in model.net.named_modules():
        if not name:
            continue

        def hook(_m, _i, out, name=name):
            if isinstance(out, torch.Tensor) and out.dim() == 4:
                fired.append((name, tuple(out.shape[-2:])))
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(torch.zeros(1, c, h, w, device=model.device))
    finally:
        for hd in handles:
            hd.remove()
    cam_pos = max(i for i, (n, _) in enumerate(fired) if n == info.cam_layer)
    cam_size = fired[cam_pos][1]
    chosen: dict[tuple[int, int], tuple[int, int, str]] = {}
    for pos, (name, size) in enumerate(fired[:cam_pos + 1]):
        if size[0] < cam_size[0] or size[0] > h // stride:
            continue
        key = (name.count("."), -pos)
        if size not in chosen or key < chosen[size][:2]:
            chosen[size] = (*key, name)
    chosen[cam_size] = (0, 0, info.cam_layer)
    return [chosen[s][2] for s in sorted(chosen)]


class RTSDecoder(nn.Module):
    """U-Net-style decoder with a class selector at the bottleneck; outputs a mask in [0, 1]."""

    def __init__(self, channels: list[int], num_classes: int, width: int = 64):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.selector = nn.Embedding(num_classes, width)
        nn.init.normal_(self.selector.weight, 1.0, 0.5)
        self.bottleneck = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.up = nn.ModuleList(nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU(),
                                              nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
                                for _ in channels[1:])
        self.out = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, feats: list[torch.Tensor], cls: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        h = F.relu(self.lateral[0](feats[0])) * self.selector(cls)[:, :, None, None]
        h = self.bottleneck(h)
        for lateral, up, f in zip(self.lateral[1:], self.up, feats[1:]):
            h = F.interpolate(h, size=f.shape[-2:], mode="bilinear", align_corners=False)
            h = up(torch.cat([h, F.relu(lateral(f))], 1))
        logits = self.out(h)
        if tuple(logits.shape[-2:]) != tuple(out_size):
            logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
        return torch.sigmoid(logits)


@dataclass(frozen=True)
class RTSConfig:
    """Training settings (part of the cache key)."""

    steps: int = 100
    batch_size: int = 32
    lr: float = 3e-3
    width: int = 32
    tv: float = 1.0  # l1: smoothness (mean squared neighbour differences)
    area: float = 1.5  # l2: mean of the mask
    destroy: float = 3.0  # l3
    destroy_power: float = 0.3  # l4
    fake_fraction: float = 0.3
    alternatives: tuple[str, ...] = ("blur",)  # any of "blur", "colour", "noise", drawn per image
    stride: int = 4
    seed: int = 0


BUDGETS = {"full": RTSConfig(), "smoke": RTSConfig(steps=12, batch_size=16)}


ALTERNATIVES = ("blur", "colour", "noise")


def alternatives(x: torch.Tensor, g: torch.Generator, blur_sigma: float,
                 kinds: tuple[str, ...] = ALTERNATIVES) -> torch.Tensor:
    """Per image, one of ``kinds``: a strong blur, a random constant colour, or Gaussian noise around
    the image (Dabkowski & Gal draw among all three)."""
    unknown = set(kinds) - set(ALTERNATIVES)
    if not kinds or unknown:
        raise ValueError(f"alternatives must be a non-empty subset of {ALTERNATIVES}, got {kinds!r}")
    b = len(x)
    options = {"blur": lambda: gaussian_blur(x, blur_sigma),
               "colour": lambda: torch.rand(b, x.shape[1], 1, 1, generator=g).to(x.device, x.dtype).expand_as(x),
               "noise": lambda: (x + 0.3 * torch.randn(x.shape, generator=g).to(x.device, x.dtype)).clamp(0, 1)}
    if len(kinds) == 1:
        return options[kinds[0]]()
    kind = torch.randint(0, len(kinds), (b,), generator=g).to(x.device).view(-1, 1, 1, 1)
    out = options[kinds[0]]()
    for i, name in enumerate(kinds[1:], 1):
        out = torch.where(kind == i, options[name](), out)
    return out


def rts_objective(model, x: torch.Tensor, mask: torch.Tensor, cls: torch.Tensor, real: torch.Tensor,
                  alt: torch.Tensor, cfg: RTSConfig) -> torch.Tensor:
    """Eq. 8 per image [B]; ``real`` marks images whose selector holds their own class (fake ones get
    only the smoothness and area terms)."""
    big = F.interpolate(mask, size=x.shape[-2:], mode="bilinear", align_corners=False)
    tv = total_variation(mask, 2.0, reduction="mean")
    area = mask.flatten(1).mean(1)
    preserved = big * x + (1 - big) * alt
    destroyed = (1 - big) * x + big * alt
    logp = model(torch.cat([preserved, destroyed])).log_softmax(1)
    b = len(x)
    keep = -logp[:b].gather(1, cls[:, None]).squeeze(1)
    destroy = logp[b:].gather(1, cls[:, None]).squeeze(1).exp().clamp_min(1e-6).pow(cfg.destroy_power)
    real = real.to(x.dtype)
    return cfg.tv * tv + cfg.area * area + real * (keep + cfg.destroy * destroy)


def _features(encoder, x: torch.Tensor, layers: list[str]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    logits, feats = encoder.forward_with(x, layers)
    return logits, feats


def train_rts(model, layers: list[str], cfg: RTSConfig, device, encoder=None, dataset=None,
              progress: bool = True, precision: str = "fp32") -> dict:
    """Train a decoder for ``model`` on its training data; returns its state dict and loss history.

    ``precision``: ``"bf16"`` computes the encoder, the decoder and Eq. 8 under bfloat16 autocast."""
    from ..data import get_dataset

    check_precision(precision)
    encoder = encoder or model
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    n_needed = cfg.steps * cfg.batch_size
    if dataset is None:
        name = model.info.dataset
        kwargs = {"n": min(10_000, n_needed)} if name == "shapes" else {}
        dataset = get_dataset(name, split="train", **kwargs)
    c, h, w = model.info.input_size
    out_size = (h // cfg.stride, w // cfg.stride)
    with torch.no_grad():
        _, feats = _features(encoder, torch.zeros(1, c, h, w, device=device), layers)
    decoder = RTSDecoder([f.shape[1] for f in feats], model.info.num_classes, cfg.width).to(device)
    opt = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    history = []
    order = torch.randperm(len(dataset), generator=g)
    k = model.info.num_classes
    bar = range(cfg.steps)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc=f"training RTS for {model.info.name}", leave=False)
    for step in bar:
        idx = order[(torch.arange(cfg.batch_size) + step * cfg.batch_size) % len(dataset)]
        b = dataset.batch(idx)
        x, y = b.x.to(device), b.y.to(device)
        fake = torch.rand(len(x), generator=g) < cfg.fake_fraction
        other = (y.cpu() + torch.randint(1, k, (len(x),), generator=g)) % k
        cls = torch.where(fake, other, y.cpu()).to(device)
        alt = alternatives(x, g, 10.0 * h / 224, cfg.alternatives)
        with autocast(precision, device):
            with torch.no_grad():
                _, feats = _features(encoder, x, layers)
            mask = decoder([f.detach() for f in feats], cls, out_size)
            loss = rts_objective(model, x, mask, cls, (~fake).to(device), alt, cfg).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        history.append(loss.item())
    decoder.eval()
    return {"state_dict": {k2: v.detach().cpu() for k2, v in decoder.state_dict().items()}, "history": history,
            "channels": [f.shape[1] for f in feats]}


class RTS(Interpreter):
    """The trained masking model as an interpreter: ``maps`` = the mask of the explained class."""

    name = "rts"
    differentiable = True

    def __init__(self, model, train_budget: str = "full", encoder=None, layers: list[str] | None = None,
                 config: RTSConfig | None = None, payload: dict | None = None, progress: bool = True,
                 precision: str | None = None):
        """``precision``: the decoder's training precision (``"auto"``, ``"bf16"``, ``"fp32"``; default
        ``$ADVXAI_TRAIN_PRECISION``, else auto: bf16 where native). It does not apply to ``payload``."""
        super().__init__(model)
        if train_budget not in BUDGETS:
            raise ValueError(f"train_budget must be one of {sorted(BUDGETS)}, got {train_budget!r}")
        self.encoder = encoder or model
        self.train_budget = train_budget
        self.config = config or BUDGETS[train_budget]
        self.layers = layers or encoder_layers(self.encoder, self.config.stride)
        c, h, w = model.info.input_size
        self.out_size = (h // self.config.stride, w // self.config.stride)
        dev = model.device
        self.precision = training_precision(dev, precision)
        if payload is None:
            payload = cached("rts", self.cache_spec(), lambda: train_rts(model, self.layers, self.config, dev,
                                                                        encoder=encoder, progress=progress,
                                                                        precision=self.precision))
        self.history = payload["history"]
        self.decoder = RTSDecoder(payload["channels"], model.info.num_classes, self.config.width).to(dev)
        self.decoder.load_state_dict(payload["state_dict"])
        self.decoder.eval().requires_grad_(False)

    def cache_spec(self) -> dict:
        return {"name": f"rts-{self.model.info.name}", "version": 1, "model": model_digest(self.model),
                "encoder": model_digest(self.encoder) if self.encoder is not self.model else "self",
                "layers": self.layers, "config": asdict(self.config), "device": self.model.device.type,
                "precision": self.precision}

    def masks(self, x: torch.Tensor, cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mask at stride 4 [B, 1, h, w], encoder logits)``, differentiable w.r.t. ``x``."""
        logits, feats = _features(self.encoder, x, self.layers)
        return self.decoder(feats, cls, self.out_size), logits

    def attribute(self, x: torch.Tensor, target: torch.Tensor, create_graph: bool) -> Explanation:
        if create_graph:
            native, logits = self.masks(x, target)
        else:
            with torch.no_grad():
                native, logits = self.masks(x, target)
        maps = upsample_to(native, tuple(x.shape[-2:]))
        return Explanation(maps=maps, raw=native, target=target, logits=logits.detach(),
                           extras={"native": native, "encoder_logits": logits})

    def state_dict_payload(self) -> dict:
        return {"state_dict": {k: v.detach().cpu() for k, v in self.decoder.state_dict().items()},
                "history": self.history, "channels": [m.in_channels for m in self.decoder.lateral]}
