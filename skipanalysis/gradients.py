"""Gradient-flow probes: per-layer norms, shattering, lesions and path lengths.

- Per-layer gradient norms of every convolution (He et al. 2016 on why BN and
  He initialisation keep plain-net gradients alive; seed text 002's FAQ).
- Shattered gradients (Balduzzi et al. 2017): gradients with respect to inputs
  along a 1-D line through input space, and how quickly neighbours decorrelate.
- Lesions and path lengths (Veit et al. 2016): delete blocks at test time; and
  the gradient carried by paths of each length, measured by back-propagating
  through the residual branch of k randomly chosen blocks and through the
  shortcut of all others.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from .models.resnet import BasicBlock, CifarResNet, ShortcutA


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The model's convolutions in definition order (which is forward order for the families here)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and not getattr(m, "is_gate", False)]


def conv_grad_norms(model: nn.Module, data: TensorDataset, n_batches: int = 2, batch_size: int = 64,
                    device: torch.device | str = "cpu") -> pd.DataFrame:
    """Norm of the loss gradient for every convolution's weight (train mode), averaged over batches."""
    model.to(device).train()
    convs = conv_layers(model)
    acc = np.zeros(len(convs))
    x_all, y_all = data.tensors[:2]
    for b in range(n_batches):
        x = x_all[b * batch_size:(b + 1) * batch_size].to(device)
        y = y_all[b * batch_size:(b + 1) * batch_size].to(device)
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        acc += np.array([m.weight.grad.norm().item() for _, m in convs]) / n_batches
    return pd.DataFrame({"layer": range(1, len(convs) + 1), "name": [n for n, _ in convs], "grad_norm": acc})


def early_late_ratio(df: pd.DataFrame, k: int = 3) -> float:
    """Mean gradient norm of the first ``k`` convolutions over that of the last ``k``."""
    g = df.sort_values("layer").grad_norm.to_numpy()
    return float(g[:k].mean() / g[-k:].mean())


# --- shattering ------------------------------------------------------------------------------------------------------

def line_gradients(model: nn.Module, x0: torch.Tensor, direction: torch.Tensor, n_points: int = 128,
                   span: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Input gradients of a fixed random read-out of the logits at ``n_points`` along ``x0 + t * direction``.

    Returns ``(n_points, numel)``. The model is evaluated in eval mode so each point is independent.
    """
    model.eval()
    t = torch.linspace(-span, span, n_points)[:, None, None, None]
    x = (x0[None] + t * direction[None]).requires_grad_(True)
    out = model(x)
    w = torch.randn(out.shape[1], generator=torch.Generator().manual_seed(seed))
    (out @ w).sum().backward()
    return x.grad.reshape(n_points, -1)


def neighbour_correlation(grads: torch.Tensor) -> float:
    """Mean cosine similarity between the gradients at adjacent points of the line."""
    a, b = grads[:-1], grads[1:]
    return F.cosine_similarity(a, b, dim=1).mean().item()


# --- lesions and paths -----------------------------------------------------------------------------------------------

class Lesion(nn.Module):
    """Stands in for a deleted block: only its (option A) shortcut remains."""

    def __init__(self, block: BasicBlock):
        super().__init__()
        self.shortcut = ShortcutA(block.conv1.in_channels, block.conv1.out_channels, block.conv1.stride[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x)


@torch.no_grad()
def error_with_lesions(model: CifarResNet, data: TensorDataset, blocks: list[int], device="cpu") -> float:
    """Test error with the given blocks (0-based) deleted; the model is restored afterwards."""
    from .train import evaluate

    saved = {i: model.blocks[i] for i in blocks}
    try:
        for i in blocks:
            model.blocks[i] = Lesion(saved[i])
        return evaluate(model, data, device)["err"]
    finally:
        for i, b in saved.items():
            model.blocks[i] = b


def single_lesions(model: CifarResNet, data: TensorDataset, device="cpu") -> pd.DataFrame:
    """Test error after deleting each block in turn (and with none deleted, as ``block`` 0)."""
    rows = [{"block": 0, "err": error_with_lesions(model, data, [], device)}]
    rows += [{"block": i + 1, "err": error_with_lesions(model, data, [i], device)} for i in range(len(model.blocks))]
    return pd.DataFrame(rows)


def random_lesions(model: CifarResNet, data: TensorDataset, ks: list[int], draws: int = 5, seed: int = 0,
                   device="cpu") -> pd.DataFrame:
    """Test error after deleting ``k`` randomly chosen blocks together, ``draws`` times per k."""
    rng = random.Random(seed)
    n = len(model.blocks)
    return pd.DataFrame([{"k": k, "draw": d, "err": error_with_lesions(model, data, rng.sample(range(n), k), device)}
                         for k in ks for d in range(draws)])


def path_gradients(model: CifarResNet, x: torch.Tensor, y: torch.Tensor, samples: int = 20, seed: int = 0
                   ) -> pd.DataFrame:
    """Veit et al. 2016, section 6: gradient norm at the first block's input carried by paths of each length k.

    The forward pass is the network's own; in the backward pass k randomly
    chosen blocks pass gradient only through their residual branch and the
    others only through their shortcut (the forward values are unchanged, the
    other route is detached). Returns, per k, the mean gradient norm per path,
    the number of paths C(n, k), and their product (the total carried).
    """
    model.eval()
    n = len(model.blocks)
    rng = random.Random(seed)
    h0 = model.stem(x).detach().requires_grad_(True)
    rows = []
    for k in range(n + 1):
        norms = []
        for _ in range(samples if 0 < k < n else 1):
            chosen = set(rng.sample(range(n), k))
            h = h0
            for i, b in enumerate(model.blocks):
                branch, skip = b.branch(h), b.shortcut(h)
                h = F.relu(skip.detach() + branch) if i in chosen else F.relu(skip + branch.detach())
            loss = F.cross_entropy(model.head(F.adaptive_avg_pool2d(h, 1).flatten(1)), y)
            (g,) = torch.autograd.grad(loss, h0)
            norms.append(g.norm().item())
        count = math.comb(n, k)
        rows.append({"length": k, "grad_per_path": float(np.mean(norms)), "paths": count,
                     "share_of_paths": count / 2 ** n})
    df = pd.DataFrame(rows)
    df["total_grad"] = df.grad_per_path * df.paths
    df["share_of_grad"] = df.total_grad / df.total_grad.sum()
    return df
