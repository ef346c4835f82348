"""The figures of notebook 01 (degradation), drawn from the numbers its study measured
(``studies.degradation``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..plotting import FAMILY_COLORS


def plot_error_curves(history: pd.DataFrame, kinds: list[str], smooth: int = 20):
    """He et al. Fig. 6 layout: one panel per kind, error vs iteration; bold = training, thin =
    test; colour = depth.

    Training error is the running mini-batch error (rolling mean over ``smooth`` steps), averaged
    over seeds; test error is measured at the evaluation steps.
    """
    depths = sorted(history.depth.unique())
    colors = dict(zip(depths, sns.color_palette("rocket_r", len(depths) + 1)[1:]))
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.4), sharey=True,
                             squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        h = history[history.kind == kind]
        for depth in depths:
            d = h[h.depth == depth]
            if d.empty:
                continue
            run = d.groupby("seed", group_keys=False).apply(
                lambda g: g.assign(smooth=g.err.rolling(smooth, min_periods=1).mean()))
            mean_train = run.groupby("step").smooth.mean()
            ax.plot(mean_train.index, 100 * mean_train.values, color=colors[depth], lw=2.2,
                    label=f"{kind}-{depth}")
            if "test_err" in d:
                t = d.dropna(subset=["test_err"]).groupby("step").test_err.mean()
                ax.plot(t.index, 100 * t.values, color=colors[depth], lw=0.9, ls="--")
        ax.set(title=kind, xlabel="iteration")
        ax.legend(fontsize="small")
    axes[0][0].set_ylabel("error (%)  bold: train, dashed: test")
    fig.tight_layout()
    return fig


def plot_final_errors(summary: pd.DataFrame, value_label: str = "final training error (%)"):
    """Mean final error per kind and depth with the 95% interval as an error bar."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    kinds = list(dict.fromkeys(summary.kind))
    for i, kind in enumerate(kinds):
        s = summary[summary.kind == kind]
        lo = (s["mean"] - s.ci_low.clip(lower=0)).clip(lower=0)
        hi = (s.ci_high.clip(upper=1) - s["mean"]).clip(lower=0)
        ax.errorbar(s.depth + (i - 1) * 1.2, 100 * s["mean"], yerr=[100 * lo, 100 * hi], fmt="o-",
                    capsize=3,
                    color=FAMILY_COLORS.get(kind), label=kind)
    ax.set(xlabel="depth", ylabel=value_label, xticks=sorted(summary.depth.unique()))
    ax.legend()
    return fig


def plot_construction(table: pd.DataFrame):
    """D3: the four training errors of ``construction_study`` as bars with their intervals."""
    fig, ax = plt.subplots(figsize=(7, 2.8))
    err = 100 * table["training error"]
    ax.barh(table.index, err,
            xerr=[(err - 100 * table.low).clip(lower=0), (100 * table.high - err).clip(lower=0)],
            color=["#0173b2", "#029e73", "#029e73", "#d55e00"], capsize=3)
    ax.invert_yaxis()
    ax.set_xlabel("training error (%)")
    return fig


def plot_distances(blocks: pd.DataFrame):
    """D4: per block, the correlation of output with input (the rule's quantity), the relative
    distance of the map to identity, and of the second kernel to the identity kernel."""
    # seaborn drops non-finite rows (a diverged net) by a unique index
    blocks = blocks.reset_index(drop=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    for ax, y in zip(axes, ("corr_identity", "to_identity", "w_to_dirac")):
        sns.lineplot(data=blocks, x="block", y=y, hue="kind", style="state", marker="o", ax=ax,
                     palette="colorblind")
    axes[0].set(ylabel="corr(B(h), h) (1: identity)", ylim=(-0.2, 1.05))
    axes[1].set(ylabel="||B(h) - h|| / ||h||", yscale="log")
    axes[2].set(ylabel="||W - I|| / ||I|| (2nd conv)")
    return fig


def plot_gates(gates: pd.DataFrame):
    """D5: mean transform gate per block of the trained highway nets."""
    fig, ax = plt.subplots(figsize=(6, 3))
    sns.lineplot(data=gates, x="block", y="gate_mean", hue="depth", marker="o", ax=ax,
                 palette="rocket_r")
    ax.set(ylabel="mean transform gate T", ylim=(0, 1))
    return fig
