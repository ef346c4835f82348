"""Datasets: procedural ones generated from a seed, and real ones through torchvision.

Procedural data make the ``smoke`` and ``quick`` profiles download-free and
bit-for-bit reproducible: the same seed gives the same tensors on any machine.

- ``texture_classification``: images of oriented sinusoidal gratings, one
  orientation/frequency pair per class, with random phase, colour, a strong
  distractor grating and noise. Hard enough that depth and optimisation matter.
- ``cifar10``: torchvision's CIFAR-10 under ``data/datasets/`` (the ``full``
  profile), with a clear error naming the folder and the fix when it is absent
  and the machine is offline.
- ``image_folder``: a user's own images, one sub-folder per class.
- ``load_classification``: one entry point for the notebooks over all three.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

DATA_ROOT = Path(__file__).resolve().parent.parent / "data" / "datasets"


def _check_positive(**kw: int) -> None:
    for name, value in kw.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r}: expected a positive integer")


def texture_classification(n: int, size: int = 16, n_classes: int = 10, seed: int = 0, channels: int = 3,
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
    _check_positive(n=n, size=size, n_classes=n_classes, channels=channels)
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % n_classes
    labels = labels[torch.randperm(n, generator=g)]
    coords = torch.linspace(-1, 1, size, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")

    def grating(theta: torch.Tensor, freq: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        proj = xx * torch.cos(theta)[:, None, None] + yy * torch.sin(theta)[:, None, None]
        return torch.sin(math.pi * freq[:, None, None] * proj + phase[:, None, None])

    theta = math.pi * labels.double() / n_classes + 0.15 * (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1)
    freq = torch.where(labels % 2 == 0, 2.0, 3.5).double() * size / 16
    signal = grating(theta, freq, 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64))
    distract = grating(math.pi * torch.rand(n, generator=g, dtype=torch.float64),
                       (1.5 + 3 * torch.rand(n, generator=g, dtype=torch.float64)) * size / 16,
                       2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64))
    colour = 0.5 + torch.rand(n, channels, 1, 1, generator=g, dtype=torch.float64)
    img = colour * (signal + 0.9 * distract)[:, None] + noise * torch.randn(n, channels, size, size, generator=g,
                                                                           dtype=torch.float64)
    img = (img - img.mean()) / img.std()
    return TensorDataset(img.float(), labels.long())


def train_test_split(data: TensorDataset, n_test: int) -> tuple[TensorDataset, TensorDataset]:
    """Split the last ``n_test`` examples off as a held-out set (the data are already shuffled)."""
    tensors = data.tensors
    n = len(tensors[0])
    if not 0 < n_test < n:
        raise ValueError(f"n_test={n_test!r}: must be between 1 and {n - 1}")
    return TensorDataset(*(t[:-n_test] for t in tensors)), TensorDataset(*(t[-n_test:] for t in tensors))


def cifar10(train: bool = True, root: str | os.PathLike | None = None, download: bool = True, transform=None):
    """CIFAR-10 through torchvision, stored under ``data/datasets/cifar10``.

    Raises:
        RuntimeError: the dataset is not there and cannot be downloaded, naming
            the expected file and how to get it.
    """
    import torchvision

    root = Path(root) if root else DATA_ROOT / "cifar10"
    root.mkdir(parents=True, exist_ok=True)
    try:
        return torchvision.datasets.CIFAR10(str(root), train=train, download=download, transform=transform)
    except Exception as exc:  # offline: URLError, or torchvision's "Dataset not found"
        expected = root / "cifar-10-batches-py"
        raise RuntimeError(
            f"CIFAR-10 is not available: expected {expected} (or the archive cifar-10-python.tar.gz in {root}) "
            f"and the download failed ({type(exc).__name__}: {exc}). Fix: run once on a machine that is online, "
            f"or copy cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into {root}; "
            "the smoke and quick profiles need no download."
        ) from exc


def image_folder(path: str | os.PathLike, transform=None):
    """A user's own images, one sub-folder per class, through torchvision's ``ImageFolder``."""
    import torchvision

    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"image folder {path} does not exist; expected <path>/<class>/<image files>")
    return torchvision.datasets.ImageFolder(str(path), transform=transform)


DATASETS = ("texture", "cifar10", "folder")


def _tensors_from(ds, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack a torchvision dataset of PIL images into float tensors in [0, 1] at ``size`` x ``size``."""
    import numpy as np
    import torch.nn.functional as F

    xs, ys = [], []
    for img, label in ds:
        arr = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
        xs.append(arr)
        ys.append(label)
    x = torch.stack(xs).float() / 255 if len({t.shape for t in xs}) == 1 else None
    if x is None or x.shape[-1] != size or x.shape[-2] != size:
        x = torch.stack([F.interpolate(t[None].float() / 255, size=(size, size), mode="bilinear",
                                       align_corners=False)[0] for t in xs])
    return x, torch.tensor(ys, dtype=torch.long)


def load_classification(dataset: str, n_train: int, n_test: int, image_size: int = 16, seed: int = 0,
                        path: str | os.PathLike | None = None) -> tuple[TensorDataset, TensorDataset]:
    """Train and test sets for a classification notebook, as ``TensorDataset`` on the CPU.

    Args:
        dataset: ``texture`` (procedural), ``cifar10`` (torchvision, ``data/datasets``) or
            ``folder`` (``path``/<class>/<images>, split by ``seed``).
        n_train, n_test: sizes; for ``cifar10`` 0 means the whole split.
        image_size: side in pixels (``cifar10`` is resized only when this is not 32).
        path: the image folder, or another CIFAR-10 root.

    Real images get He et al.'s per-pixel mean subtraction (the training set's mean image).
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset={dataset!r} is not allowed; choose one of {', '.join(DATASETS)}")
    if dataset == "texture":
        return train_test_split(texture_classification(n_train + n_test, image_size, seed=seed), n_test)
    g = torch.Generator().manual_seed(seed)
    if dataset == "cifar10":
        xtr, ytr = _tensors_from(cifar10(True, root=path), image_size)
        xte, yte = _tensors_from(cifar10(False, root=path), image_size)
        if n_train:
            keep = torch.randperm(len(xtr), generator=g)[:n_train]
            xtr, ytr = xtr[keep], ytr[keep]
        if n_test:
            xte, yte = xte[:n_test], yte[:n_test]
    else:
        if not path:
            raise ValueError("dataset='folder' needs data_path=<folder with one sub-folder per class>")
        x, y = _tensors_from(image_folder(path), image_size)
        order = torch.randperm(len(x), generator=g)
        x, y = x[order], y[order]
        if n_train + n_test > len(x):
            raise ValueError(f"n_train + n_test = {n_train + n_test} but {path} holds only {len(x)} images")
        xtr, ytr, xte, yte = x[:n_train], y[:n_train], x[n_train:n_train + n_test], y[n_train:n_train + n_test]
    mean = xtr.mean(0, keepdim=True)
    return TensorDataset(xtr - mean, ytr), TensorDataset(xte - mean, yte)


def to_device(data: TensorDataset, device: torch.device | str) -> TensorDataset:
    """Move a ``TensorDataset`` onto ``device`` once, so training never copies batches (the GPU path)."""
    return TensorDataset(*(t.to(device) for t in data.tensors))


# --- procedural segmentation -----------------------------------------------------------------------------------------

def _pixel_grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.arange(size, dtype=torch.float64)
    return torch.meshgrid(c, c, indexing="ij")  # (row, col) pixel centres


def draw_curve(size: int, p0, p1, p2, width: float) -> torch.Tensor:
    """Pixels within ``width / 2`` of the quadratic Bezier curve p0 -> p2 with control point p1 (row, col).

    The curve is sampled at ``4 * size`` points (spacing well under a pixel) and a
    pixel belongs to it when its centre lies within ``width / 2`` of a sample.
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
    out[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1] = (d2.min(1).values <= (width / 2) ** 2 + 1e-9).reshape(ys.shape)
    return out


def draw_ellipse(size: int, centre, radii) -> torch.Tensor:
    """Pixels inside the axis-aligned ellipse with this centre (row, col) and radii (row, col)."""
    yy, xx = _pixel_grid(size)
    return ((yy - float(centre[0])) / float(radii[0])) ** 2 + ((xx - float(centre[1])) / float(radii[1])) ** 2 <= 1 + 1e-9


def segmentation_categories(max_width: int) -> dict[int, str]:
    """Names of the structure categories in ``segmentation_shapes``'s category map (0 is background)."""
    names = {w: f"line w={w}px" for w in range(1, max_width + 1)}
    names[max_width + 1] = "small blob"
    names[max_width + 2] = "large region"
    return names


def segmentation_shapes(n: int, size: int = 32, max_width: int = 3, seed: int = 0, noise: float = 0.5,
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
    _check_positive(n=n, size=size, max_width=max_width)
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
    images = background + contrast * masks + noise * torch.randn(n, 1, size, size, generator=g, dtype=torch.float64)
    return TensorDataset(images.float(), masks.float(), cats)


# --- procedural sequences --------------------------------------------------------------------------------------------

def reversal_task(n: int, seq_len: int = 16, vocab: int = 16, seed: int = 0) -> TensorDataset:
    """Sequence reversal: the target at position i is the input token at position ``seq_len - 1 - i``.

    Every output needs a token from across the sequence (on average ``seq_len / 2``
    positions away), so the task cannot be solved by local mixing.

    Returns:
        ``TensorDataset(tokens (n, seq_len) int64, targets (n, seq_len) int64)``.
    """
    _check_positive(n=n, seq_len=seq_len, vocab=vocab)
    if vocab < 2:
        raise ValueError(f"vocab={vocab!r}: need at least 2 tokens")
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (n, seq_len), generator=g)
    return TensorDataset(tokens, tokens.flip(1))
