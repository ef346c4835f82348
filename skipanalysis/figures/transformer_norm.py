"""The figures of notebook 05 (norm placement), drawn from the numbers its study measured
(``studies.transformer_norm``)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from ..models.transformer import Encoder
from ..plotting import FAMILY_COLORS


def plot_grad_at_init(grads: pd.DataFrame):
    """Left: per-block gradient norm of the deepest stack; right: last-layer W2 gradient against
    depth, per seed, with Xiong et al.'s scalings (constant, 1/sqrt(L)) anchored at the shallowest
    depth's median."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    top, d0 = grads.depth.max(), grads.depth.min()
    last = grads[grads.layer == grads.depth]
    ds = np.linspace(d0, top, 50)
    for n in ("post", "pre"):
        per_layer = grads[(grads.norm == n) & (grads.depth == top)].groupby(
            "layer").block_grad.median()
        axes[0].plot(per_layer.index, per_layer.values, "o-", color=_color(n), label=f"{n}-norm")
        pts = last[last.norm == n]
        axes[1].plot(pts.depth, pts.w2_grad, "o", alpha=0.5, color=_color(n),
                     label=f"{n}-norm (each seed)")
        anchor = pts[pts.depth == d0].w2_grad.median()
        theory = np.ones_like(ds) if n == "post" else np.sqrt(d0 / ds)
        axes[1].plot(ds, anchor * theory, ":", color=_color(n),
                     label="theory: constant" if n == "post" else "theory: 1/sqrt(L)")
    axes[0].set(xlabel="layer", ylabel="gradient norm of the block (median over seeds)",
                yscale="log",
                title=f"depth {top}, at init")
    axes[1].set(xlabel="depth L", ylabel="||grad W2|| of the last layer", xscale="log",
                yscale="log")
    axes[0].legend()
    axes[1].legend(fontsize="small")
    return fig


def plot_warmup(hist: pd.DataFrame, outs: pd.DataFrame, vocab: int):
    """Training loss per learning rate and arm (mean over seeds); x marks a diverged run."""
    lrs = sorted(hist.lr.unique())
    fig, axes = plt.subplots(1, len(lrs), figsize=(5 * len(lrs), 3.4), sharey=True, squeeze=False)
    for ax, lr in zip(axes[0], lrs):
        for (n, wu), g in hist[hist.lr == lr].groupby(["norm", "warmup"]):
            curve = g.groupby("step").loss.mean().rolling(5, min_periods=1).mean()
            ax.plot(curve.index, curve.values, color=_color(n), ls="-" if wu else "--",
                    label=f"{n}-norm, {'warm-up' if wu else 'no warm-up'}")
            bad = outs[(outs.norm == n) & (outs.lr == lr) & (outs.warmup == wu) & outs.diverged]
            for s in bad.seed:
                run = g[g.seed == s]
                ax.plot(run.step.iloc[-1], min(run.loss.iloc[-1], 2 * math.log(vocab)), "x",
                        color="k", ms=8)
        ax.axhline(math.log(vocab), color="grey", lw=0.8, ls=":")
        ax.set(title=f"Adam lr {lr:g}", xlabel="step", ylabel="training loss (x: diverged)")
        ax.legend(fontsize="small")
    return fig


def plot_depth(t3: pd.DataFrame, vocab: int):
    """Final training loss of every run against depth (T3's sweep), with the 'trained' line."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for k, n in enumerate(("post", "pre")):
        g = t3[t3.norm == n]
        ax.plot(g.depth * (1 + 0.03 * (2 * k - 1)), g.final_loss, "o", alpha=0.6, color=_color(n),
                label=f"{n}-norm ({g.trained.sum()}/{len(g)} trained)")
    ax.axhline(0.5 * math.log(vocab), color="grey", ls=":", lw=0.8, label="trained below this line")
    depths = sorted(t3.depth.unique())
    ax.set(xlabel="depth", ylabel="final training loss", xscale="log", xticks=depths,
           xticklabels=depths)
    ax.minorticks_off()
    ax.legend(fontsize="small")
    return fig


def plot_reach(layers: pd.DataFrame, window: int, seq_len: int):
    """Per layer: attention distance (dotted: uniform), mass beyond the window, entropy (dotted:
    uniform); colour by placement, line style by task when ``layers`` has a ``task`` column."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    style = "task" if "task" in layers else None
    for ax, col, label in zip(axes, ["distance", "beyond_window", "entropy"],
                              ["mean attention distance", f"mass beyond |i-j|>{window}",
                               "entropy (nats)"]):
        sns.lineplot(data=layers, x="layer", y=col, hue="norm", style=style, marker="o", ax=ax,
                     palette={"post": _color("post"), "pre": _color("pre")})
        ax.set(ylabel=label)
    axes[0].axhline(layers.uniform_distance.iloc[0], color="grey", ls=":", lw=0.8)
    axes[2].axhline(math.log(seq_len), color="grey", ls=":", lw=0.8)
    return fig


def plot_attention_maps(models: dict[str, Encoder], tokens: dict[str, torch.Tensor]):
    """Head-averaged attention of every layer (columns), mean over held-out inputs, for one model
    per task (rows): query position down, key position across (Li et al.'s maps for attention: the
    learned connectivity itself)."""
    maps = {}
    for task, m in models.items():
        m.eval()
        maps[task] = [a.float().mean(0).cpu() for a in m.attention_maps(tokens[task])]
    depth = max(len(v) for v in maps.values())
    fig, axes = plt.subplots(len(maps), depth, figsize=(1.9 * depth + 0.8, 2.1 * len(maps)),
                             squeeze=False,
                             constrained_layout=True)
    image = None
    for r, (task, layers) in enumerate(maps.items()):
        for c, ax in enumerate(axes[r]):
            if c < len(layers):
                image = ax.imshow(layers[c].numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set(xticks=[], yticks=[], title=f"layer {c + 1}" if r == 0 else "")
        axes[r][0].set_ylabel(f"{task}\nquery")
    for ax in axes[-1]:
        ax.set_xlabel("key")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    return fig


def _color(norm: str):

    return FAMILY_COLORS[f"{norm}-norm"]
