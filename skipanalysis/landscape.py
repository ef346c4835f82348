"""Loss surfaces along filter-normalised random directions.

Li, Xu, Taylor, Studer, Goldstein. "Visualizing the Loss Landscape of Neural
Nets", NeurIPS 2018: draw a Gaussian direction with the shape of the
parameters, rescale each filter of it (each slice along the output dimension)
to the norm of the corresponding filter of the trained weights, and zero the
entries of batch-norm parameters and biases; then evaluate the loss on
``theta + a * d1 + b * d2`` over a grid. Smoothness is quantified here by the
curvature of the surface: at every interior grid point the finite-difference
Hessian of the 2-D slice, and the share of points where it has a clearly
negative eigenvalue (non-convex).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset


def filter_normalized_direction(model: nn.Module, seed: int = 0) -> list[torch.Tensor]:
    """A random direction, one tensor per parameter, filter-normalised as in Li et al. 2018."""
    g = torch.Generator().manual_seed(seed)
    direction = []
    for p in model.parameters():
        if p.dim() <= 1:  # batch-norm weights and biases, all biases
            direction.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device)
        d_norm = d.reshape(d.shape[0], -1).norm(dim=1).clamp(min=1e-12)
        p_norm = p.detach().reshape(p.shape[0], -1).norm(dim=1)
        direction.append(d * (p_norm / d_norm).reshape(-1, *[1] * (p.dim() - 1)))
    return direction


@torch.no_grad()
def loss_surface(model: nn.Module, data: TensorDataset, d1: list[torch.Tensor], d2: list[torch.Tensor] | None,
                 alphas: np.ndarray, betas: np.ndarray | None = None, device="cpu") -> np.ndarray:
    """Mean cross-entropy (eval mode) at ``theta + a d1 + b d2`` for each (a, b); 1-D when ``d2`` is None.

    The model's parameters are restored afterwards.
    """
    model.to(device).eval()
    x, y = (t.to(device) for t in data.tensors[:2])
    params = list(model.parameters())
    theta = [p.detach().clone() for p in params]
    betas = np.zeros(1) if d2 is None else betas
    out = np.zeros((len(alphas), len(betas)))
    try:
        for i, a in enumerate(alphas):
            for j, b in enumerate(betas):
                for p, t, u in zip(params, theta, d1):
                    p.copy_(t + float(a) * u)
                if d2 is not None:
                    for p, v in zip(params, d2):
                        p.add_(float(b) * v)
                out[i, j] = F.cross_entropy(model(x), y).item()
    finally:
        for p, t in zip(params, theta):
            p.copy_(t)
    return out[:, 0] if d2 is None else out


def curvature(surface: np.ndarray, step: float, tol: float = 0.05) -> dict[str, float]:
    """Curvature statistics of a 2-D loss grid from central finite differences.

    Returns the share of interior points whose Hessian has an eigenvalue below
    ``-tol`` times its largest absolute eigenvalue (``nonconvex_share``), the
    median ``|lambda_min / lambda_max|`` over the interior (Li et al.'s
    convexity map summarised), and the number of strict local minima (points
    lower than their 8 neighbours).
    """
    f = surface
    fxx = (f[2:, 1:-1] - 2 * f[1:-1, 1:-1] + f[:-2, 1:-1]) / step ** 2
    fyy = (f[1:-1, 2:] - 2 * f[1:-1, 1:-1] + f[1:-1, :-2]) / step ** 2
    fxy = (f[2:, 2:] - f[2:, :-2] - f[:-2, 2:] + f[:-2, :-2]) / (4 * step ** 2)
    mean, diff = (fxx + fyy) / 2, np.sqrt(((fxx - fyy) / 2) ** 2 + fxy ** 2)
    lam_max, lam_min = mean + diff, mean - diff
    scale = np.maximum(np.abs(lam_max), np.abs(lam_min)).clip(min=1e-12)
    centre = f[1:-1, 1:-1]
    neighbours = np.stack([f[1 + dy:f.shape[0] - 1 + dy, 1 + dx:f.shape[1] - 1 + dx]
                           for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
    return {"nonconvex_share": float((lam_min < -tol * scale).mean()),
            "median_negative_ratio": float(np.median(np.maximum(0.0, -lam_min) / scale)),
            "local_minima": int((centre < neighbours.min(0)).sum())}


def slice_convexity(curve: np.ndarray, tol: float = 1e-3) -> float:
    """Share of interior points of a 1-D slice with non-negative second difference (1.0: convex)."""
    second = curve[2:] - 2 * curve[1:-1] + curve[:-2]
    return float((second >= -tol * np.abs(curve).max()).mean())


def surfaces_table(results: dict[tuple[str, int], dict]) -> pd.DataFrame:
    """One row per (family, depth) from the per-model curvature dicts."""
    return pd.DataFrame([{"family": f, "depth": d, **r} for (f, d), r in results.items()])
