"""How near a trained net's blocks are to the identity: per block, the distance of its map to the
identity and to zero (``block_distances``, notebook 01's D4), how open highway gates are
(``gate_openness``, D5), and the error and output comparisons of the identity construction
(``error_rate``, ``max_output_difference``, D3)."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset

from .. import train as tr
from ..models.blocks import ShortcutA
from ..models.highway import HighwayBlock
from ..models.resnet import CifarResNet


@torch.no_grad()
def block_distances(model: CifarResNet, x: torch.Tensor) -> pd.DataFrame:
    """Per block, on inputs ``x`` (eval mode): relative distance of the block's map to identity and
    to zero.

    ``to_identity = ||B(h) - S(h)|| / ||S(h)||`` with S the option A shortcut (the identity where
    shapes match); ``to_zero = ||B(h)|| / ||S(h)||``; also the conv weights' distance to a Dirac
    (identity) kernel relative to its norm, and their norm relative to it (near 0: weights near
    zero); and ``corr_identity``, the scale-invariant one: per image, the correlation (centred
    cosine) between the block's output and its shortcut, averaged over images (1: the identity's
    direction whatever the scale; near 0: unrelated).
    """

    model.eval()
    h = model.stem(x)
    rows = []
    for i, block in enumerate(model.blocks):
        out = block(h)
        s = ShortcutA(block.conv1.in_channels, block.conv1.out_channels, block.conv1.stride[0])(h)
        ref = s.norm()
        w = block.conv2.weight
        dirac = torch.zeros_like(w)
        nn.init.dirac_(dirac)
        a, b = out.flatten(1), s.flatten(1)
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        corr = ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)).mean()
        rows.append({"block": i + 1, "corr_identity": corr.item(),
                     "to_identity": ((out - s).norm() / ref).item(),
                     "to_zero": (out.norm() / ref).item(),
                     "w_to_dirac": ((w - dirac).norm() / dirac.norm()).item(),
                     "w_norm_rel": (w.norm() / dirac.norm()).item()})
        h = out
    return pd.DataFrame(rows)


@torch.no_grad()
def gate_openness(model: CifarResNet, x: torch.Tensor) -> pd.DataFrame:
    """Mean transform-gate value T per highway block on ``x`` (0: carry the input, 1: transform)."""
    model.eval()
    model(x)
    return pd.DataFrame([{"block": i + 1, "gate_mean": b.last_gate_mean}
                         for i, b in enumerate(model.blocks) if isinstance(b, HighwayBlock)])


@torch.no_grad()
def error_rate(model: nn.Module, data: TensorDataset, device: torch.device | str = "cpu") -> float:
    """Error rate of ``model`` on ``data`` in eval mode."""
    return tr.evaluate(model, data, device)["err"]


def max_output_difference(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    """Largest absolute difference of two models' logits on ``x`` (eval mode), relative to the
    logits' scale."""
    a.eval(), b.eval()
    with torch.no_grad():
        ya, yb = a(x), b(x)
    return ((ya - yb).abs().max() / ya.abs().max()).item()
