"""Notebook 06's data (ISBI 2012: slice split, tiles, structure thickness): the slices split into
training tiles and held-out slices, and the membranes' local thickness for claim U2.

The study that trains on them is ``studies.unet_skips``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import data as dt
from .unet_skips import _as_4d


def tiles(x: torch.Tensor, tile: int) -> torch.Tensor:
    """Cut ``(N, C, S, S)`` into non-overlapping ``tile`` x ``tile`` tiles, ``(N * (S // tile)**2,
    C, tile, tile)``."""
    n, c, h, w = x.shape
    if tile < 1 or h % tile or w % tile:
        raise ValueError(
            f"tile={tile!r} is not allowed for {h}x{w} images: it must divide both sides")
    t = x.reshape(n, c, h // tile, tile, w // tile, tile).permute(0, 2, 4, 1, 3, 5)
    return t.reshape(-1, c, tile, tile)


def elastic_deform(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator,
                   sigma: float = 10.0,
                   grid: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Ronneberger et al.'s elastic deformation of ``(N, 1, H, W)`` images and their masks, one
    field per pair: random displacements on a coarse ``grid`` x ``grid`` grid, drawn from a Gaussian
    with ``sigma`` pixels' standard deviation and interpolated bicubically to every pixel; the image
    is resampled bilinearly and the mask by nearest neighbour along the same field, so the mask
    stays a mask and stays on its image (borders reflect).
    """
    n, _, h, w = images.shape
    coarse = torch.randn(n, 2, grid, grid, generator=generator, dtype=torch.float32) * sigma
    # pixels, (dx, dy)
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    # grid_sample's coordinates: -1 .. 1 across the image
    gx = (xs + field[:, 0]) * 2 / max(w - 1, 1) - 1
    gy = (ys + field[:, 1]) * 2 / max(h - 1, 1) - 1
    where = torch.stack([gx, gy], dim=-1)
    warped = F.grid_sample(images.float(), where, mode="bilinear", padding_mode="reflection",
                           align_corners=True)
    labels = F.grid_sample(masks.float(), where, mode="nearest", padding_mode="reflection",
                           align_corners=True)
    return warped.to(images.dtype), labels.to(masks.dtype)


def isbi_split(size: int = 256, train_slices: int = 24, tile: int = 64, archive=None, folder=None,
               elastic_copies: int = 0) -> tuple[dt.LabelledData, dt.LabelledData]:
    """The ISBI 2012 slices (or a user's ``folder`` of images and masks, ``data.mask_folder``) split
    by whole slices: training tiles and held-out whole slices.

    Slices ``0 .. train_slices - 1`` (resized to ``size`` px) are cut into non-overlapping
    ``tile``-px tiles for training; the remaining slices are the test set, kept whole (a U-Net is
    fully convolutional). Neighbouring slices of the stack are similar, so only one slice pair
    straddles the split. Grey values are standardised with the training slices' mean and standard
    deviation. Masks: 1 = membrane. ``elastic_copies`` adds that many elastically deformed copies of
    every training slice before it is tiled (``elastic_deform``, 10 px at 512 px scaled to ``size``;
    the fields are drawn once, from generator seed 0, so every run trains on the same set).
    """
    full = dt.mask_folder(folder, size) if folder else dt.isbi2012(archive, size=size)
    x, y = full.tensors
    n = len(x)
    if not 1 <= train_slices < n:
        raise ValueError(
            f"train_slices={train_slices!r} is not allowed; expected 1 .. {n - 1} (of {n} slices)")
    mean, std = x[:train_slices].mean(), x[:train_slices].std()
    x = (x - mean) / std
    if elastic_copies < 0:
        raise ValueError(f"elastic_copies={elastic_copies!r} is not allowed; expected 0 or more")
    xs, ys = [x[:train_slices]], [y[:train_slices]]
    g = torch.Generator().manual_seed(0)
    for _ in range(elastic_copies):
        xd, yd = elastic_deform(x[:train_slices], y[:train_slices], g, sigma=10.0 * size / 512)
        xs.append(xd)
        ys.append(yd)
    xtr, ytr = tiles(torch.cat(xs), tile), tiles(torch.cat(ys), tile)
    deformed = f" (with {elastic_copies} elastic copies each)" if elastic_copies else ""
    what = (
        f"{dt.describe(full)}; train: slices 0-{train_slices - 1}{deformed} as {len(xtr)} tiles of "
        f"{tile} px; test: slices {train_slices}-{n - 1} whole")
    return dt.LabelledData(xtr, ytr, description=what), dt.LabelledData(x[train_slices:],
                                                                        y[train_slices:],
                                                                         description=what)


def local_thickness(masks: torch.Tensor, max_radius: int = 8) -> torch.Tensor:
    """Local thickness of the foreground in pixels: for each foreground pixel, the diameter ``2r +
    1`` of the largest disc (radius ``r <= max_radius``) that lies inside the foreground and covers
    the pixel; 0 on background.

    Computed by binary openings with discs of growing radius (Hildebrand and Ruegsegger 1997, in
    2-D, with discrete discs ``x^2 + y^2 <= r^2 + 0.5``). Masks ``(N, [1,] H, W)``; returns an int
    tensor ``(N, H, W)``.
    """
    from scipy import ndimage

    m = _as_4d(masks)[:, 0].numpy() > 0.5
    out = np.zeros(m.shape, dtype=np.int64)
    for r in range(max_radius + 1):
        yy, xx = np.ogrid[-r:r + 1, -r:r + 1]
        disc = xx * xx + yy * yy <= r * r + 0.5
        for i in range(len(m)):
            opened = ndimage.binary_opening(m[i], structure=disc) if r else m[i]
            out[i][opened] = 2 * r + 1
    return torch.from_numpy(out)


def thickness_categories(thickness: torch.Tensor,
                         bins: list[int]) -> tuple[torch.Tensor, dict[int, str]]:
    """Group foreground pixels by local thickness: ``<= bins[0]``, ``(bins[0], bins[1]]``, ..., ``>
    bins[-1]``.

    Returns ``(categories, names)``: category ``1 .. len(bins) + 1`` per foreground pixel (0 on
    background), thinnest first, and a readable name for each.
    """
    if not bins or any(b < 1 for b in bins) or sorted(set(bins)) != list(bins):
        raise ValueError(
            f"bins={bins!r} is not allowed; expected increasing positive thicknesses in pixels")
    cats = torch.zeros_like(thickness)
    fg = thickness > 0
    cats[fg] = torch.bucketize(thickness[fg], torch.tensor(bins), right=False) + 1
    names = {1: f"<= {bins[0]} px"}
    for i, (lo, hi) in enumerate(zip(bins, bins[1:]), start=2):
        names[i] = f"{hi} px" if hi - lo <= 2 else f"{lo + 1}-{hi} px"
    names[len(bins) + 1] = f"> {bins[-1]} px"
    return cats, names
