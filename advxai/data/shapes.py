"""``shapes``: a synthetic, seeded data set of bird-like objects made of parts, on cluttered backgrounds.

Built for this study as the stand-in for CUB/AwA (attributes, parts) and for a localisation
benchmark (object masks). Every image carries its ground truth: class, attribute vector, object
mask, a bit map of its parts and a box per part.

The object (in its own frame, facing +u): a **body** (4 shapes, 4 colours), a **head** (4 colours)
in front, a **wing** on the body (4 patterns, 4 colours) and a **tail** behind (4 shapes, 4
colours): 7 attribute groups x 4 values = 28 binary attributes, named CUB-style
(``has_tail_shape::forked``). A class is one value per group; the 20 default classes are drawn so
that any two differ in at least 3 groups. Each image takes its class's values and then, per group
and with probability ``flip_prob``, a different value, so (as with real birds) an image can differ
from its class description while a single change never makes it another class.

**Fine-grained colours, so that the models are as fragile as natural-image models.** Classes differ
the way CUB's birds do, by close shades: each colour group's four colours lie 0.4 of the way from
the group's mean colour to the saturated ``PALETTE`` entry named by the attribute
(``COLOUR_SPREAD``: a muted red, a muted blue ...), and an image's part colour varies by only +-3 %
(``COLOUR_JITTER``) around its shade. The study compares attacks against plain targeted PGD, which
fools ImageNet models on every image at eps = 8/255; with the saturated colours of generator
version 1 (spread 1, jitter +-12 %) the small models trained here reached 96-97 % accuracy but
targeted PGD (eps 8/255, 160 steps of 1/255) fooled only 84 % (ResNet) and 57 % (DenseNet) of
correctly classified test images, because moving a part's colour across a wide gap between
saturated colours takes more than 8/255. With the close shades the same recipes reach 96.25 %
(ResNet) and 96.0 % (DenseNet) test accuracy, and PGD fools 600 of 600 correctly classified test
images of each (Wilson 95 % interval [0.994, 1]; :func:`advxai.models.fragility.targeted_pgd_success`,
full training budget, one core). Halfway shades (spread 0.5) left DenseNet at 296 of 300. The
models' errors are all on images whose attributes differ from their class's (``flip_prob``).

Each image: a smooth random colour field plus pixel noise as background, 6-10 distractor shapes in
the saturated palette (clutter), then the object at a random position, scale (0.31-0.44 of the
image size per unit length), rotation (+-45 degrees) and facing (left/right). Rendered at twice the
size and averaged down (antialiasing). Generation is batched and deterministic: image ``i`` of a
split depends only on (seed, split, i), so a smaller ``n`` gives a prefix of a larger one.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .base import InMemoryImageDataset

GENERATOR_VERSION = 2  # 2: fine-grained part colours (close shades), smaller colour jitter
CHUNK = 128  # images per seeded chunk (small enough for the CPU cache: 2x faster than 500)

PARTS = ("body", "head", "wing", "tail")
GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # (group, part, values)
    ("body_shape", "body", ("ellipse", "rectangle", "diamond", "triangle")),
    ("body_color", "body", ("red", "green", "blue", "yellow")),
    ("head_color", "head", ("white", "black", "orange", "purple")),
    ("wing_pattern", "wing", ("solid", "striped", "dotted", "checkered")),
    ("wing_color", "wing", ("red", "blue", "white", "black")),
    ("tail_shape", "tail", ("fan", "pointed", "forked", "square")),
    ("tail_color", "tail", ("green", "yellow", "orange", "purple")),
)
PALETTE = {
    "red": (0.86, 0.14, 0.12),
    "green": (0.12, 0.66, 0.22),
    "blue": (0.14, 0.32, 0.92),
    "yellow": (0.96, 0.86, 0.12),
    "white": (0.96, 0.96, 0.94),
    "black": (0.08, 0.08, 0.10),
    "orange": (1.00, 0.52, 0.06),
    "purple": (0.58, 0.18, 0.78),
}
N_VALUES = 4
ATTRIBUTE_NAMES = [f"has_{g}::{v}" for g, _, values in GROUPS for v in values]
ATTRIBUTE_PARTS = [PARTS.index(p) for _, p, values in GROUPS for _ in values]
CLASS_DESIGN_SEED = 20240601
MIN_GROUP_DISTANCE = 3
# Fine-grained colours (see the module docstring): each group's four colours are pulled this far
# towards the group's mean colour (1 = the saturated PALETTE, 0 = one colour), and an image's part
# colour varies by at most this fraction around its value.
COLOUR_SPREAD = 0.4
COLOUR_JITTER = 0.03
NOISE_STD = 0.025  # sensor noise, per pixel and channel
PATTERN_CONTRAST = 1.0  # wing pattern and eye: this fraction of the way to the contrasting colour


# --------------------------------------------------------------------------- classes


@lru_cache(maxsize=16)
def class_codes(num_classes: int) -> np.ndarray:
    """[K, G] value index per group; any two classes differ in >= 3 groups; fixed for a given K."""
    rng = np.random.default_rng(CLASS_DESIGN_SEED)
    codes: list[np.ndarray] = []
    tries = 0
    while len(codes) < num_classes:
        tries += 1
        if tries > 200_000:
            raise ValueError(f"cannot design {num_classes} classes {MIN_GROUP_DISTANCE} groups apart")
        c = rng.integers(0, N_VALUES, size=len(GROUPS))
        if all((c != d).sum() >= MIN_GROUP_DISTANCE for d in codes):
            codes.append(c)
    return np.stack(codes)


def codes_to_attributes(codes: np.ndarray | torch.Tensor) -> torch.Tensor:
    """[N, G] value indices -> [N, G*4] binary attribute vectors."""
    codes = torch.as_tensor(codes, dtype=torch.long)
    return F.one_hot(codes, N_VALUES).flatten(1).float()


def class_name(code: np.ndarray, k: int) -> str:
    g = {name: values[int(code[i])] for i, (name, _, values) in enumerate(GROUPS)}
    return f"s{k:02d}_{g['body_color']}_{g['body_shape']}_{g['tail_shape']}"


# --------------------------------------------------------------------------- geometry


def _halfplane(u, v, p, q):
    """Points left of the directed edge p -> q (for counter-clockwise polygons)."""
    return (q[0] - p[0]) * (v - p[1]) - (q[1] - p[1]) * (u - p[0]) >= 0


def _convex(u, v, pts):
    m = torch.ones_like(u, dtype=torch.bool)
    for i in range(len(pts)):
        m &= _halfplane(u, v, pts[i], pts[(i + 1) % len(pts)])
    return m


_BODY_SHAPES = (
    lambda u, v: (u / 0.46) ** 2 + (v / 0.29) ** 2 <= 1,                          # ellipse
    lambda u, v: (u.abs() <= 0.41) & (v.abs() <= 0.24),                            # rectangle
    lambda u, v: u.abs() / 0.50 + v.abs() / 0.33 <= 1,                             # diamond
    lambda u, v: _convex(u, v, [(-0.44, -0.31), (0.50, 0.0), (-0.44, 0.31)]),      # triangle
)


def _fan(u, v):
    du = u + 0.36
    return (du < 0) & (du ** 2 + v ** 2 <= 0.44 ** 2) & (v.abs() <= -du * math.tan(math.radians(38)))


def _forked(u, v):
    return (_convex(u, v, [(-0.36, -0.02), (-0.36, 0.11), (-0.80, 0.30)])
            | _convex(u, v, [(-0.36, -0.11), (-0.36, 0.02), (-0.80, -0.30)]))


_TAIL_SHAPES = (
    _fan,
    lambda u, v: _convex(u, v, [(-0.36, -0.13), (-0.36, 0.13), (-0.84, 0.0)]),    # pointed
    _forked,
    lambda u, v: (u >= -0.74) & (u <= -0.34) & (v.abs() <= 0.15),                 # square
)


def _shape_by_code(shapes, u, v, which):
    """Evaluate, for each image, only the shape its code selects: [B, H, W] boolean."""
    out = torch.zeros(u.shape, dtype=torch.bool)
    for k, shape in enumerate(shapes):
        idx = torch.nonzero(which == k).flatten()
        if len(idx):
            out[idx] = shape(u[idx], v[idx])
    return out


def _stripes(u, v):
    return torch.sin(u * (2 * math.pi / 0.13)) > 0


def _dots(u, v):
    fu, fv = torch.frac((u + 10) / 0.15), torch.frac((v + 10) / 0.15)
    return (fu - 0.5) ** 2 + (fv - 0.5) ** 2 < 0.30 ** 2


def _checks(u, v):
    return (torch.floor((u + 10) / 0.13) + torch.floor((v + 10) / 0.13)) % 2 == 0


# Secondary-colour masks inside the wing: solid (none), striped, dotted, checkered.
_WING_PATTERNS = (lambda u, v: torch.zeros(u.shape, dtype=torch.bool), _stripes, _dots, _checks)


def _palette_tensor(group: int) -> torch.Tensor:
    """The group's four colours [4, 3] as objects wear them: ``COLOUR_SPREAD`` of the way from the
    group's mean colour to the saturated ``PALETTE`` entries (close shades, as in fine-grained birds)."""
    pal = torch.tensor([PALETTE[v] for v in GROUPS[group][2]])
    mean = pal.mean(0, keepdim=True)
    return mean + COLOUR_SPREAD * (pal - mean)


def _contrast(colours: torch.Tensor) -> torch.Tensor:
    """A pattern colour that stands out from each colour: dark on light colours, light on dark."""
    lum = (colours * torch.tensor([0.299, 0.587, 0.114])).sum(-1, keepdim=True)
    far = torch.where(lum > 0.45, colours * 0.25, colours * 0.4 + 0.6)
    return colours + PATTERN_CONTRAST * (far - colours)


# --------------------------------------------------------------------------- rendering


def render_chunk(codes: torch.Tensor, size: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Render one batch of objects with the given per-image codes [B, G] (after flips).

    Painting works on a map of layer ids (painter's algorithm on one integer channel) and looks
    the colours up once at the end, which is several times faster than compositing RGB layers.
    """
    B, S = codes.shape[0], 2 * size  # supersampled canvas
    rnd = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    ys, xs = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
    xs, ys = xs.expand(B, S, S), ys.expand(B, S, S)
    colours: list[torch.Tensor] = [torch.zeros(B, 3)]  # layer 0: the background field

    # ---- clutter: 6-10 distractor disks, squares and strokes in the object palette. Drawn at the
    # output resolution and repeated to the canvas: clutter needs no antialiasing, and this is 4x cheaper.
    palette = torch.tensor(list(PALETTE.values()))
    n_clutter = 10
    active = torch.arange(n_clutter).expand(B, -1) < (6 + (rnd(B) * 5).long()).unsqueeze(1)
    ys1, xs1 = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    clutter_ids = torch.zeros(B, size, size, dtype=torch.uint8)
    for k in range(n_clutter):
        cx, cy = rnd(B, 1, 1) * size, rnd(B, 1, 1) * size
        r = (0.03 + 0.06 * rnd(B, 1, 1)) * size
        kind = (rnd(B) * 3).long().view(B, 1, 1)
        ang = rnd(B, 1, 1) * math.pi
        ddx, ddy = xs1 - cx, ys1 - cy
        disk = ddx * ddx + ddy * ddy <= r * r
        square = torch.maximum(ddx.abs(), ddy.abs()) <= r * 0.8
        stroke = ((ddx * torch.sin(ang) - ddy * torch.cos(ang)).abs() <= 0.012 * size) & (
            (ddx * torch.cos(ang) + ddy * torch.sin(ang)).abs() <= 2.2 * r)
        m = torch.where(kind == 0, disk, torch.where(kind == 1, square, stroke)) & active[:, k].view(B, 1, 1)
        clutter_ids.masked_fill_(m, len(colours))
        colours.append(palette[(rnd(B) * len(palette)).long()] * (0.75 + 0.25 * rnd(B, 1)))
    ids = clutter_ids.repeat_interleave(2, 1).repeat_interleave(2, 2)
    first_object_layer = len(colours)

    # ---- the object's frame: position, scale, rotation, facing
    scale = (0.31 + 0.13 * rnd(B)) * S
    theta = (rnd(B) * 2 - 1) * math.radians(45)
    facing = torch.where(rnd(B) < 0.5, -1.0, 1.0)
    cx = (0.38 + 0.24 * rnd(B)) * S
    cy = (0.38 + 0.24 * rnd(B)) * S
    dx, dy = xs - cx.view(B, 1, 1), ys - cy.view(B, 1, 1)
    c, s_ = torch.cos(theta).view(B, 1, 1), torch.sin(theta).view(B, 1, 1)
    u = (c * dx + s_ * dy) / scale.view(B, 1, 1) * facing.view(B, 1, 1)
    v = (-s_ * dx + c * dy) / scale.view(B, 1, 1)

    body = _shape_by_code(_BODY_SHAPES, u, v, codes[:, 0])
    head = (u - 0.56) ** 2 + (v + 0.02) ** 2 <= 0.18 ** 2
    wing = ((u + 0.06) / 0.31) ** 2 + ((v - 0.02) / 0.16) ** 2 <= 1
    tail = _shape_by_code(_TAIL_SHAPES, u, v, codes[:, 5])
    pattern = _shape_by_code(_WING_PATTERNS, u, v, codes[:, 3]) & wing
    eye = (u - 0.61) ** 2 + (v + 0.07) ** 2 <= 0.035 ** 2

    def colour_of(group: int) -> torch.Tensor:
        base = _palette_tensor(group)[codes[:, group]]  # [B, 3]
        return (base * (1 - COLOUR_JITTER + 2 * COLOUR_JITTER * rnd(B, 1))).clamp(0, 1)

    body_c, head_c, wing_c, tail_c = colour_of(1), colour_of(2), colour_of(4), colour_of(6)
    for mask, colour in ((tail, tail_c), (body, body_c), (wing, wing_c), (pattern, _contrast(wing_c)),
                         (head, head_c), (eye, _contrast(head_c))):
        ids.masked_fill_(mask, len(colours))
        colours.append(colour)

    # ---- colours: look the layers up, background field where id 0, shading on the object
    table = torch.stack(colours, 1)  # [B, L, 3]
    flat = table.gather(1, ids.view(B, -1, 1).long().expand(-1, -1, 3)).view(B, S, S, 3).permute(0, 3, 1, 2)
    coarse = rnd(B, 3, 4, 4) * 0.6 + 0.2
    coarse = 0.5 * coarse + 0.5 * coarse.mean(1, keepdim=True)  # half-saturated, like a photo background
    field = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    field = field.repeat_interleave(2, 2).repeat_interleave(2, 3)  # smooth: no need to compute at 2x
    shade = 1.0 - 0.18 * v.clamp(-1, 1)  # light from above: a hint of volume
    shade = torch.where(ids >= first_object_layer, shade, 1.0)
    # Layer 0's colour is zero, so adding the field where id == 0 composes without a 3-channel select.
    canvas = flat * shade.unsqueeze(1) + field * (ids == 0).unsqueeze(1)

    # ---- down-sample (antialias) and add sensor noise
    image = F.avg_pool2d(canvas, 2)
    image = (image + NOISE_STD * torch.randn(image.shape, generator=g)).clamp_(0, 1)
    part_masks = F.avg_pool2d(torch.stack([body, head, wing, tail], 1).float(), 2) >= 0.5  # [B, 4, H, W]
    obj = part_masks.any(1, keepdim=True)

    # ---- part boxes (x0, y0, x1, y1) in pixels of the output image; NaN for an empty part
    rows, cols = part_masks.any(3), part_masks.any(2)  # [B, 4, H], [B, 4, W]
    idx = torch.arange(size, dtype=torch.float32)
    boxes = torch.stack([
        torch.where(cols, idx, float(size + 1)).amin(2),
        torch.where(rows, idx, float(size + 1)).amin(2),
        torch.where(cols, idx, -1.0).amax(2) + 1,
        torch.where(rows, idx, -1.0).amax(2) + 1,
    ], -1)
    boxes[~rows.any(2)] = float("nan")
    weights = (2 ** torch.arange(len(PARTS))).view(1, -1, 1, 1)
    bits = (part_masks.long() * weights).sum(1, keepdim=True).to(torch.uint8)
    return {
        "images": (image * 255).round().to(torch.uint8),
        "masks": obj,
        "part_bits": bits,
        "part_boxes": boxes,
    }


def _chunk_generator(seed: int, split: str, chunk: int) -> torch.Generator:
    split_id = {"train": 1, "test": 2, "val": 3}[split]
    return torch.Generator().manual_seed(((seed * 1009 + split_id) * 1_000_003 + chunk) % (2**63))


def generate(n: int, split: str = "train", seed: int = 0, image_size: int = 64, num_classes: int = 20,
             flip_prob: float = 0.03) -> dict[str, torch.Tensor]:
    """Generate ``n`` images of a split; returns uint8 images, labels, attributes and annotations."""
    codes_k = torch.as_tensor(class_codes(num_classes))
    out: dict[str, list] = {k: [] for k in ("images", "masks", "part_bits", "part_boxes", "labels", "codes")}
    for chunk in range(math.ceil(n / CHUNK)):
        g = _chunk_generator(seed, split, chunk)
        b = CHUNK  # always a whole chunk (then cut): the draws must not depend on n
        labels = torch.randint(0, num_classes, (b,), generator=g)
        codes = codes_k[labels].clone()
        flip = torch.rand(b, len(GROUPS), generator=g) < flip_prob
        shift = torch.randint(1, N_VALUES, (b, len(GROUPS)), generator=g)  # a *different* value
        codes = torch.where(flip, (codes + shift) % N_VALUES, codes)
        rendered = render_chunk(codes, image_size, g)
        for k, v in rendered.items():
            out[k].append(v)
        out["labels"].append(labels)
        out["codes"].append(codes)
    return {k: torch.cat(v)[:n] for k, v in out.items()}


def class_attribute_matrix(num_classes: int, flip_prob: float) -> torch.Tensor:
    """[K, A] expected attribute frequencies per class (the analogue of CUB's continuous vectors):
    1 - p for the class's value of a group, p / 3 for each other value."""
    binary = codes_to_attributes(class_codes(num_classes))
    return binary * (1 - flip_prob) + (1 - binary) * (flip_prob / (N_VALUES - 1))


def _check(n, image_size, num_classes, flip_prob, seed):
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(image_size, int) or not 32 <= image_size <= 512:
        raise ValueError(f"image_size must be an integer in [32, 512], got {image_size!r}")
    if not isinstance(num_classes, int) or not 2 <= num_classes <= 100:
        raise ValueError(f"num_classes must be an integer in [2, 100], got {num_classes!r}")
    if not 0.0 <= flip_prob < 0.5:
        raise ValueError(f"flip_prob must be in [0, 0.5), got {flip_prob!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


DEFAULT_SIZES = {"train": 10_000, "test": 2_000, "val": 2_000}


def load_shapes_dataset(split: str = "test", n: int | None = None, image_size: int = 64, num_classes: int = 20,
                        flip_prob: float = 0.03, seed: int = 0, use_cache: bool = True) -> InMemoryImageDataset:
    """The ``shapes`` split, generated on first use and cached (``$ADVXAI_CACHE/data``)."""
    if split not in DEFAULT_SIZES:
        raise ValueError(f"shapes has splits {sorted(DEFAULT_SIZES)}, not {split!r}")
    n = DEFAULT_SIZES[split] if n is None else n
    _check(n, image_size, num_classes, flip_prob, seed)
    spec = dict(name=f"shapes-{split}", version=GENERATOR_VERSION, n=n, image_size=image_size,
                num_classes=num_classes, flip_prob=flip_prob, seed=seed)
    if use_cache:
        from ..runtime import cached

        data = cached("data", spec, lambda: generate(n, split, seed, image_size, num_classes, flip_prob))
    else:
        data = generate(n, split, seed, image_size, num_classes, flip_prob)
    codes = class_codes(num_classes)
    return InMemoryImageDataset(
        name="shapes",
        split=split,
        classes=[class_name(codes[k], k) for k in range(num_classes)],
        labels=data["labels"],
        images=data["images"],
        annotations={
            "attributes": codes_to_attributes(data["codes"]),
            "masks": data["masks"],
            "part_bits": data["part_bits"],
            "part_boxes": data["part_boxes"],
        },
        attribute_names=list(ATTRIBUTE_NAMES),
        class_attributes=class_attribute_matrix(num_classes, flip_prob),
        part_names=list(PARTS),
        attribute_parts=list(ATTRIBUTE_PARTS),
        info={"source": "generated (advxai.data.shapes)", **spec},
    )


def part_mask(part_bits: torch.Tensor, part: int | str) -> torch.Tensor:
    """Boolean mask [B, 1, H, W] of one part from a batch's ``part_bits``."""
    k = PARTS.index(part) if isinstance(part, str) else int(part)
    return (part_bits >> k) & 1 == 1
