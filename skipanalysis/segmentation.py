"""Segmentation metrics and training for the U-Net study (notebook 06).

Dice and IoU (Jaccard) on binary masks; a boundary F-score in the spirit of
the BSDS / DAVIS contour measure (Martin et al. 2004; Perazzi et al. 2016): a
predicted boundary pixel counts as correct when a true boundary pixel lies
within ``tol`` pixels (Chebyshev distance), and vice versa; and IoU per
structure category for claim U2.
"""

from __future__ import annotations

import time

import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from . import train as tr
from .models.unet import UNet


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).bool()


def dice(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image Dice of binary masks ``(N, ...)``; two empty masks score 1."""
    p, t = _flat(pred), _flat(target)
    inter, total = (p & t).sum(1).double(), (p.sum(1) + t.sum(1)).double()
    return torch.where(total == 0, torch.ones_like(total), 2 * inter / total.clamp(min=1))


def iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image intersection over union of binary masks ``(N, ...)``; two empty masks score 1."""
    p, t = _flat(pred), _flat(target)
    inter, union = (p & t).sum(1).double(), (p | t).sum(1).double()
    return torch.where(union == 0, torch.ones_like(union), inter / union.clamp(min=1))


def _as_4d(m: torch.Tensor) -> torch.Tensor:
    m = m.float()
    return m[:, None] if m.dim() == 3 else m


def boundary(mask: torch.Tensor) -> torch.Tensor:
    """Boundary pixels of binary masks ``(N, [1,] H, W)``: foreground pixels with a background 4-neighbour.

    Pixels outside the image count as background.
    """
    m = _as_4d(mask)
    p = F.pad(m, (1, 1, 1, 1), value=0.0)  # 4-neighbourhood erosion: minimum over the pixel's 4 neighbours
    cross = torch.minimum(torch.minimum(p[..., :-2, 1:-1], p[..., 2:, 1:-1]),
                          torch.minimum(p[..., 1:-1, :-2], p[..., 1:-1, 2:]))
    inner = torch.minimum(m, cross)
    return (m - inner).bool().reshape(mask.shape)


def boundary_f(pred: torch.Tensor, target: torch.Tensor, tol: int = 1) -> torch.Tensor:
    """Per-image boundary F-score with a tolerance of ``tol`` pixels; two empty boundaries score 1."""
    bp, bt = _as_4d(boundary(pred)), _as_4d(boundary(target))
    k = 2 * tol + 1
    near_t = F.max_pool2d(bt, k, stride=1, padding=tol) > 0
    near_p = F.max_pool2d(bp, k, stride=1, padding=tol) > 0
    np_, nt = bp.sum((1, 2, 3)).double(), bt.sum((1, 2, 3)).double()
    precision = torch.where(np_ == 0, (nt == 0).double(), (bp.bool() & near_t).sum((1, 2, 3)) / np_.clamp(min=1))
    recall = torch.where(nt == 0, (np_ == 0).double(), (bt.bool() & near_p).sum((1, 2, 3)) / nt.clamp(min=1))
    f = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    return torch.where((np_ == 0) & (nt == 0), torch.ones_like(f), f)


def category_iou(pred: torch.Tensor, target: torch.Tensor, categories: torch.Tensor, names: dict[int, str],
                 margin: int = 2) -> pd.DataFrame:
    """IoU per structure category, pooled over images.

    For category c: true positives and false negatives are the predicted and
    missed pixels of c's structures; false positives are predicted foreground
    pixels that are background and lie within ``margin`` pixels of a c structure
    (so a thin line is charged for the halo it smears, not for other objects).
    """
    p, t = _as_4d(pred).bool(), _as_4d(target).bool()
    rows = []
    for c, name in names.items():
        in_c = (categories == c)[:, None]
        near = F.max_pool2d(in_c.float(), 2 * margin + 1, stride=1, padding=margin) > 0
        tp = (p & in_c).sum().item()
        fn = (~p & in_c).sum().item()
        fp = (p & ~t & near).sum().item()
        rows.append({"category": name, "pixels": int(in_c.sum()), "iou": tp / max(1, tp + fp + fn)})
    return pd.DataFrame(rows)


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice loss (a common U-Net objective)."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum((1, 2, 3))
    soft_dice = (2 * inter + 1) / (prob.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return bce + (1 - soft_dice).mean()


def dice_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean Dice of the thresholded prediction (the error logged during training)."""
    return 1 - dice(logits > 0, target > 0.5).mean()


def train_unet(skip: str, train_set: TensorDataset, test_set: TensorDataset, cfg: tr.TrainConfig, depth: int = 3,
               base: int = 16, device: torch.device | str = "cpu") -> tuple[UNet, tr.TrainResult, float]:
    """Build a U-Net with this skip, seed it with ``cfg.seed``, train it; returns (model, result, seconds)."""
    tr.seed_everything(cfg.seed)
    model = UNet(train_set.tensors[0].shape[1], 1, depth, base, skip)
    t0 = time.perf_counter()
    res = tr.train(model, train_set, cfg, test_set, device, loss_fn=bce_dice_loss, err_fn=dice_error)
    return model, res, time.perf_counter() - t0


@torch.no_grad()
def predict(model: UNet, images: torch.Tensor, device: torch.device | str = "cpu", batch_size: int = 128
            ) -> torch.Tensor:
    """Binary predictions (logit > 0) for ``images``, on the CPU."""
    model.eval()
    outs = [(model(images[i:i + batch_size].to(device)) > 0).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(outs)


def scores(pred: torch.Tensor, target: torch.Tensor, tol: int = 1) -> dict[str, float]:
    """Mean Dice, IoU and boundary F (tolerance ``tol``) over images."""
    t = target > 0.5
    return {"dice": dice(pred, t).mean().item(), "iou": iou(pred, t).mean().item(),
            "boundary_f": boundary_f(pred, t, tol).mean().item()}


def step_time(model: UNet, images: torch.Tensor, device: torch.device | str = "cpu", min_run_time: float = 0.5
              ) -> dict[str, float]:
    """Median forward+backward time of one batch with ``torch.utils.benchmark`` (seconds) and its IQR."""
    from torch.utils import benchmark

    model.to(device).train()
    x = images.to(device)

    def step():
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()

    m = benchmark.Timer(stmt="step()", globals={"step": step}).blocked_autorange(min_run_time=min_run_time)
    return {"median_s": m.median, "iqr_s": m.iqr}
