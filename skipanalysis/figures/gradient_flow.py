"""The figures of notebook 02 (gradient flow), drawn from the numbers its study measured
(``studies.gradient_flow``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..plotting import FAMILY_COLORS


def plot_profiles(init: pd.DataFrame, trained: pd.DataFrame, deep: int,
                  column: str = "grad_rms") -> plt.Figure:
    """Left: gradient per layer at initialisation of the deep nets, with and without batch norm
    (mean over seeds). Right: the trained nets' profiles at initialisation, half-way and at the end
    (mean over seeds)."""
    d = init[init.depth == deep].copy()
    d["relative depth"] = d.groupby(["family", "bn", "seed"]).layer.transform(
        lambda n: (n - 1) / max(1, n.max() - 1))
    t = trained.copy()
    t["relative depth"] = t.groupby(["family", "seed", "step"]).layer.transform(
        lambda n: (n - 1) / max(1, n.max() - 1))
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
    sns.lineplot(data=d, x="relative depth", y=column, hue="family", style="bn",
                 style_order=[True, False],
                 palette={f: FAMILY_COLORS[f] for f in d.family.unique()}, errorbar=None,
                 ax=axes[0])
    axes[0].set(yscale="log", ylabel="RMS weight gradient",
                title=f"depth {deep} at initialisation (style: BN)")
    sns.lineplot(data=t, x="relative depth", y=column, hue="family", style="point",
                 palette={f: FAMILY_COLORS[f] for f in t.family.unique()}, errorbar=None,
                 ax=axes[1])
    axes[1].set(yscale="log", ylabel="RMS weight gradient", title="trained nets (with BN)")
    for ax in axes:
        ax.set_xlabel("relative depth of the layer (0: first)")
        ax.legend(fontsize="small")
    return fig


def plot_shattering(shat: pd.DataFrame, floor: float) -> plt.Figure:
    """Neighbour gradient correlation against depth per family (points: seeds; line: mean), log
    scale."""
    d = shat.assign(correlation=shat.correlation.clip(lower=floor))
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.lineplot(data=d, x="depth", y="correlation", hue="family", marker="o", errorbar=None, ax=ax,
                 palette={f: FAMILY_COLORS[f] for f in d.family.unique()})
    sns.stripplot(data=d, x="depth", y="correlation", hue="family", native_scale=True, legend=False,
                  alpha=0.4,
                  ax=ax, palette={f: FAMILY_COLORS[f] for f in d.family.unique()})
    ax.axhline(floor, color="grey", ls=":", lw=0.8)
    ax.set(yscale="log", xlabel="depth", ylabel="neighbour gradient correlation")
    return fig


def plot_lesions(lesions: pd.DataFrame, multi: pd.DataFrame, paths: pd.DataFrame) -> plt.Figure:
    """Left: damage of each single-block lesion (seeds as points). Middle: test error with k random
    blocks deleted (first seed). Right: shares of paths and of gradient by path length (mean over
    seeds)."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.3))
    pal = {f: FAMILY_COLORS[f] for f in lesions.family.unique()}
    sns.pointplot(data=lesions, x="block", y="damage", hue="family", errorbar=("ci", 95), dodge=0.3,
                  ax=axes[0],
                  palette=pal)
    axes[0].axhline(0, color="grey", lw=0.8)
    axes[0].set(xlabel="deleted block", ylabel="damage (0: none, 1: chance)")
    sns.lineplot(data=multi, x="k", y="err", hue="family", marker="o", ax=axes[1], palette=pal)
    axes[1].set(xlabel="blocks deleted together", ylabel="test error")
    mean = paths.groupby("length")[["share_of_paths", "share_of_grad"]].mean()
    axes[2].bar(mean.index, mean.share_of_paths, alpha=0.5, label="share of paths")
    axes[2].plot(mean.index, mean.share_of_grad, "o-", color="k", label="share of gradient")
    axes[2].set(xlabel="path length (residual branches passed)")
    axes[2].legend(fontsize="small")
    return fig


def plot_sweep(sweep: pd.DataFrame, order: list[str]) -> plt.Figure:
    """Early/late gradient ratio at initialisation and steps to fit the training data per
    configuration (95% CI)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    sns.pointplot(data=sweep, x="family", y="early_late_init", order=order, errorbar=("ci", 95),
                  ax=axes[0])
    axes[0].set(yscale="log", xlabel="", ylabel="early/late gradient ratio (init)")
    sns.pointplot(data=sweep, x="family", y="steps_to_fit", order=order, errorbar=("ci", 95),
                  ax=axes[1])
    axes[1].set(xlabel="", ylabel="steps to fit the training data")
    return fig
