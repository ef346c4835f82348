"""Procedural datasets, generated from a seed: textures for smoke runs, shapes of set fineness for
the U-Net study, token tasks (reversal, local copying) for the transformer study."""

from __future__ import annotations

import math

import torch
from torch.utils.data import TensorDataset


def texture_classification(n: int, size: int = 16, n_classes: int = 10, seed: int = 0,
                           channels: int = 3,
                           noise: float = 0.8) -> TensorDataset:
    """Procedural texture classification.

    Class ``c`` is a grating at orientation ``pi * c / n_classes`` (jittered by
    +-0.15 rad) and one of two spatial frequencies; each image adds a distractor
    grating of random orientation at 0.9 amplitude, a random colour mix per
    channel and Gaussian noise, then is standardised.

    Args:
        n: number of images.
        size: height and width in pixels.
        n_classes: number of classes (labels balanced, then shuffled).
        seed: generator seed; same seed, same tensors.
        channels: image channels.
        noise: standard deviation of the pixel noise.

    Returns:
        A ``TensorDataset`` of float32 images ``(n, channels, size, size)`` and int64 labels.
    """
    check_positive(n=n, size=size, n_classes=n_classes, channels=channels)
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % n_classes
    labels = labels[torch.randperm(n, generator=g)]
    coords = torch.linspace(-1, 1, size, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")

    def grating(theta: torch.Tensor, freq: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        proj = xx * torch.cos(theta)[:, None, None] + yy * torch.sin(theta)[:, None, None]
        return torch.sin(math.pi * freq[:, None, None] * proj + phase[:, None, None])

    theta = math.pi * labels.double() / n_classes + 0.15 * (
        2 * torch.rand(n, generator=g, dtype=torch.float64) - 1)
    freq = torch.where(labels % 2 == 0, 2.0, 3.5).double() * size / 16
    signal = grating(theta, freq, 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64))
    distract = grating(math.pi * torch.rand(n, generator=g, dtype=torch.float64),
                       (1.5 + 3 * torch.rand(n, generator=g, dtype=torch.float64)) * size / 16,
                       2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64))
    colour = 0.5 + torch.rand(n, channels, 1, 1, generator=g, dtype=torch.float64)
    img = colour * (signal + 0.9 * distract)[:, None] + noise * torch.randn(n, channels, size, size,
                                                                            generator=g,
                                                                           dtype=torch.float64)
    img = (img - img.mean()) / img.std()
    return TensorDataset(img.float(), labels.long())


def _pixel_grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.arange(size, dtype=torch.float64)
    return torch.meshgrid(c, c, indexing="ij")  # (row, col) pixel centres


def draw_curve(size: int, p0, p1, p2, width: float) -> torch.Tensor:
    """Pixels within ``width / 2`` of the quadratic Bezier curve p0 -> p2 with control point p1
    (row, col).

    The curve is sampled at ``4 * size`` points (spacing well under a pixel) and a pixel belongs to
    it when its centre lies within ``width / 2`` of a sample.
    """
    yy, xx = _pixel_grid(size)
    t = torch.linspace(0, 1, 4 * size, dtype=torch.float64)[:, None]
    p0, p1, p2 = (torch.as_tensor(p, dtype=torch.float64) for p in (p0, p1, p2))
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2  # (T, 2)
    # Only pixels inside the curve's bounding box (grown by the width) can be hit.
    lo = (pts.min(0).values - width).floor().clamp(min=0).long()
    hi = (pts.max(0).values + width).ceil().clamp(max=size - 1).long()
    out = torch.zeros(size, size, dtype=torch.bool)
    ys, xs = yy[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1], xx[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1]
    d2 = (ys.reshape(-1, 1) - pts[:, 0]) ** 2 + (xs.reshape(-1, 1) - pts[:, 1]) ** 2
    out[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1] = (d2.min(1).values <= (width / 2) ** 2 + 1e-9).reshape(
        ys.shape)
    return out


def draw_ellipse(size: int, centre, radii) -> torch.Tensor:
    """Pixels inside the axis-aligned ellipse with this centre (row, col) and radii (row, col)."""
    yy, xx = _pixel_grid(size)
    dy, dx = (yy - float(centre[0])) / float(radii[0]), (xx - float(centre[1])) / float(radii[1])
    return dy ** 2 + dx ** 2 <= 1 + 1e-9


def segmentation_categories(max_width: int) -> dict[int, str]:
    """Names of the structure categories in ``segmentation_shapes``'s category map (0 is
    background)."""
    names = {w: f"line w={w}px" for w in range(1, max_width + 1)}
    names[max_width + 1] = "small blob"
    names[max_width + 2] = "large region"
    return names


def segmentation_shapes(n: int, size: int = 32, max_width: int = 3, seed: int = 0,
                        noise: float = 0.5,
                        contrast: float = 1.0) -> TensorDataset:
    """Procedural binary segmentation with structures of controlled fineness.

    Each image holds two thin curves (quadratic Bezier, width drawn from
    1..``max_width`` px), two small blobs (radius 1 to 2 px) and one large
    ellipse, drawn ``contrast`` brighter than a textured background (smooth
    random field plus Gaussian noise of std ``noise``).

    Returns:
        ``TensorDataset(images (n,1,S,S) float32, masks (n,1,S,S) float32 in {0,1},
        categories (n,S,S) int64)``: the category map gives, per pixel, the
        structure drawn there last (see ``segmentation_categories``; 0: background).
    """
    check_positive(n=n, size=size, max_width=max_width)
    if size < 16:
        raise ValueError(f"size={size!r}: segmentation images need at least 16 px per side")
    g = torch.Generator().manual_seed(seed)
    u = lambda *shape: torch.rand(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    cats = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        cat = cats[i]
        r0, r1 = size / 6, size / 4
        c = 2 + u(2) * (size - 4)
        cat[draw_ellipse(size, c, r0 + u(2) * (r1 - r0))] = max_width + 2
        for _ in range(2):
            ends = 1 + u(3, 2) * (size - 2)
            w = int(torch.randint(1, max_width + 1, (1,), generator=g))
            cat[draw_curve(size, ends[0], ends[1], ends[2], w)] = w
        for _ in range(2):
            c = 2 + u(2) * (size - 4)
            r = 1 + u(1).item()
            cat[draw_ellipse(size, c, (r, r))] = max_width + 1
    low = torch.randn(n, 1, size // 8, size // 8, generator=g, dtype=torch.float64)
    import torch.nn.functional as F

    background = 0.8 * F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    masks = (cats > 0).double()[:, None]
    images = background + contrast * masks + noise * torch.randn(n, 1, size, size, generator=g,
                                                                 dtype=torch.float64)
    return TensorDataset(images.float(), masks.float(), cats)


def _random_tokens(n: int, seq_len: int, vocab: int, seed: int) -> torch.Tensor:
    """``(n, seq_len)`` tokens drawn uniformly from ``vocab`` symbols by a generator seeded with
    ``seed``."""
    check_positive(n=n, seq_len=seq_len, vocab=vocab)
    if vocab < 2:
        raise ValueError(f"vocab={vocab!r}: need at least 2 tokens")
    return torch.randint(0, vocab, (n, seq_len), generator=torch.Generator().manual_seed(seed))


def reversal_task(n: int, seq_len: int = 16, vocab: int = 16, seed: int = 0) -> TensorDataset:
    """Sequence reversal: the target at position i is the input token at position ``seq_len - 1 -
    i``.

    Every output needs a token from across the sequence (on average ``seq_len / 2`` positions away),
    so the task cannot be solved by local mixing.

    Returns:
        ``TensorDataset(tokens (n, seq_len) int64, targets (n, seq_len) int64)``.
    """
    tokens = _random_tokens(n, seq_len, vocab, seed)
    return TensorDataset(tokens, tokens.flip(1))


def local_task(n: int, seq_len: int = 16, vocab: int = 16, seed: int = 0) -> TensorDataset:
    """A control task solvable locally: the target at position i is the token before it, ``x[i-1]``
    (position 0 copies itself).

    Each output needs the token one position away only, so attention has no reason to reach farther
    (the counterpart of ``reversal_task``, which needs the farthest reach: both copy a token, only
    the distance differs).

    Returns:
        ``TensorDataset(tokens (n, seq_len) int64, targets (n, seq_len) int64)``.
    """
    tokens = _random_tokens(n, seq_len, vocab, seed)
    return TensorDataset(tokens, torch.cat([tokens[:, :1], tokens[:, :-1]], dim=1))


def check_positive(**kw: int) -> None:
    for name, value in kw.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r}: expected a positive integer")
