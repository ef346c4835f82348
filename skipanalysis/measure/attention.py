"""How far a transformer's attention reaches: attention-weighted token distance, entropy, mass
beyond a local window and on the reversal partner, and input dependence, per layer (05's T4)."""

from __future__ import annotations

import pandas as pd
import torch

from ..models.transformer import Encoder


@torch.no_grad()
def attention_reach(model: Encoder, tokens: torch.Tensor, window: int = 2) -> pd.DataFrame:
    """How far attention reaches, per layer, on ``tokens``.

    Columns: ``distance`` (attention-weighted mean |i - j|), ``entropy`` (nats,
    mean over queries), ``beyond_window`` (attention mass on keys with
    |i - j| > window), ``partner`` (mass on the reversal partner j = L-1-i),
    ``input_dependence`` (mean total-variation distance between the attention
    rows of two different inputs at the same query position), and the same
    distance for uniform attention as ``uniform_distance``.
    """
    model.eval()
    maps = model.attention_maps(tokens)
    seq_len = tokens.shape[1]
    idx = torch.arange(seq_len)
    dist = (idx[:, None] - idx[None, :]).abs().float()
    partner = torch.zeros(seq_len, seq_len)
    partner[idx, seq_len - 1 - idx] = 1
    uniform = dist.mean().item()
    rows = []
    for layer, a in enumerate(maps, start=1):
        a = a.float().cpu()
        ent = -(a * a.clamp(min=1e-12).log()).sum(-1).mean().item()
        tv = (0.5 * (a[0::2][: len(a) // 2] - a[1::2][: len(a) // 2]).abs().sum(-1).mean().item()
              if len(a) > 1 else 0.0)
        rows.append({"layer": layer, "distance": (a * dist).sum(-1).mean().item(), "entropy": ent,
                     "beyond_window": (a * (dist > window)).sum(-1).mean().item(),
                     "partner": (a * partner).sum(-1).mean().item(), "input_dependence": tv,
                     "uniform_distance": uniform})
    return pd.DataFrame(rows)
