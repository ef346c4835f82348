"""Pre-norm vs post-norm transformers: gradients at initialisation, warm-up, depth, attention reach.

Xiong et al. 2020 (ICML) show that at initialisation the gradient of the last
layer's parameters is O(d sqrt(ln d)) for post-norm, independent of depth L,
and O(d sqrt(ln d / L)) for pre-norm, so post-norm needs a learning-rate
warm-up while pre-norm does not; Liu et al. 2020 (EMNLP) on deep post-norm
stacks that fail to train.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from . import train as tr
from .models.transformer import Encoder


def seq_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Token-level cross-entropy for ``(N, L, V)`` logits and ``(N, L)`` targets."""
    return F.cross_entropy(out.transpose(1, 2), y)


def seq_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of wrong tokens."""
    return (out.argmax(-1) != y).float().mean()


def build(norm: str, depth: int, vocab: int, seq_len: int, d_model: int, n_heads: int, d_ff: int, seed: int
          ) -> Encoder:
    """A freshly initialised encoder; the seed fixes the initialisation."""
    tr.seed_everything(seed)
    return Encoder(vocab, seq_len, depth, d_model, n_heads, d_ff, norm)


def init_grad_norms(norm: str, depth: int, data: TensorDataset, seeds: list[int], n_batches: int = 4,
                    batch_size: int = 64, d_model: int = 64, n_heads: int = 4, d_ff: int = 128,
                    device: torch.device | str = "cpu") -> pd.DataFrame:
    """Gradient norms at initialisation, per block and for the last block's second FFN weight.

    Each value is the mean over ``n_batches`` batches; one row per (seed, layer).
    """
    x, y = data.tensors
    vocab, seq_len = int(max(x.max(), y.max())) + 1, x.shape[1]
    rows = []
    for seed in seeds:
        model = build(norm, depth, vocab, seq_len, d_model, n_heads, d_ff, seed).to(device)
        acc = np.zeros(depth)
        w2 = np.zeros(depth)
        for b in range(n_batches):
            xb, yb = x[b * batch_size:(b + 1) * batch_size].to(device), y[b * batch_size:(b + 1) * batch_size].to(device)
            model.zero_grad(set_to_none=True)
            seq_loss(model(xb), yb).backward()
            for i, block in enumerate(model.blocks):
                acc[i] += torch.sqrt(sum((p.grad ** 2).sum() for p in block.parameters())).item() / n_batches
                w2[i] += block.ff[2].weight.grad.norm().item() / n_batches
        rows += [{"norm": norm, "depth": depth, "seed": seed, "layer": i + 1, "block_grad": acc[i], "w2_grad": w2[i]}
                 for i in range(depth)]
    return pd.DataFrame(rows)


def loglog_slope(x: list[float], y: list[float]) -> float:
    """Least-squares slope of log(y) against log(x): 0 for constant, -0.5 for 1/sqrt(x)."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def run(norm: str, depth: int, train_set: TensorDataset, test_set: TensorDataset, cfg: tr.TrainConfig,
        d_model: int = 64, n_heads: int = 4, d_ff: int = 128, device: torch.device | str = "cpu"
        ) -> tuple[Encoder, tr.TrainResult]:
    """Train one encoder on a sequence task with ``cfg`` (Adam, optional warm-up)."""
    x, y = train_set.tensors
    vocab, seq_len = int(max(x.max(), y.max())) + 1, x.shape[1]
    model = build(norm, depth, vocab, seq_len, d_model, n_heads, d_ff, cfg.seed)
    res = tr.train(model, train_set, cfg, test_set, device, loss_fn=seq_loss, err_fn=seq_error)
    return model, res


def outcome(res: tr.TrainResult, vocab: int, tail: float = 0.1) -> dict:
    """Did the run train? ``final_loss`` is the mean loss over the last ``tail`` of the steps.

    ``trained``: no divergence and a final loss below half of ln(vocab) (chance).
    ``diverged``: the loss became NaN/inf, exploded, or ended above where it started.
    """
    h = res.history
    start = float(h.loss.iloc[0])
    final = float(h.loss.iloc[-max(1, int(len(h) * tail)):].mean())
    diverged = bool(res.diverged or not math.isfinite(final) or final > start)
    return {"start_loss": start, "final_loss": final if math.isfinite(final) else float("nan"), "diverged": diverged,
            "trained": bool((not diverged) and final < 0.5 * math.log(vocab)),
            "test_err": res.final.get("test_err", float("nan"))}


def warmup_grid(norms: list[str], depth: int, lrs: list[float], warmups: list[int], seeds: list[int],
                train_set: TensorDataset, test_set: TensorDataset, cfg: tr.TrainConfig, device="cpu", **size
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Train every (norm, lr, warm-up, seed); returns (histories, outcomes, models)."""
    vocab = int(train_set.tensors[1].max()) + 1
    hist, outs, models = [], [], {}
    for norm in norms:
        for lr in lrs:
            for wu in warmups:
                for seed in seeds:
                    c = replace(cfg, lr=lr, warmup_steps=wu, seed=seed, desc=f"{norm} lr={lr:g} wu={wu} s{seed}")
                    model, res = run(norm, depth, train_set, test_set, c, device=device, **size)
                    hist.append(res.history.assign(norm=norm, lr=lr, warmup=wu, seed=seed))
                    outs.append({"norm": norm, "lr": lr, "warmup": wu, "seed": seed, **outcome(res, vocab)})
                    models[(norm, lr, wu, seed)] = model
    return pd.concat(hist, ignore_index=True), pd.DataFrame(outs), models


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
        tv = 0.5 * (a[0::2][: len(a) // 2] - a[1::2][: len(a) // 2]).abs().sum(-1).mean().item() if len(a) > 1 else 0.0
        rows.append({"layer": layer, "distance": (a * dist).sum(-1).mean().item(), "entropy": ent,
                     "beyond_window": (a * (dist > window)).sum(-1).mean().item(),
                     "partner": (a * partner).sum(-1).mean().item(), "input_dependence": tv,
                     "uniform_distance": uniform})
    return pd.DataFrame(rows)
