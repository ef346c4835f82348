"""The figures of notebook 03 (equivalence), drawn from the numbers its study measured
(``studies.equivalence``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..studies.equivalence import residual_block_params


def plot_conv_concat(trials: pd.DataFrame):
    """E2: the largest error of each random shape against the number of terms summed per output."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.scatterplot(data=trials, x=trials["in_channels"] * trials["kernel"] ** 2, y="max_abs_err",
                    hue="pieces",
                    palette="colorblind", ax=ax, s=18)
    ax.set(xscale="log", yscale="symlog", ylim=(0, None),
           xlabel="terms summed per output (in_channels x kernel^2)",
           ylabel="max |conv(cat) - sum conv|")
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0e}"))
    return fig


def plot_tied_fit(fit: pd.DataFrame):
    """E3: the measured residual of the best tied fit beside sqrt(1 - 1/m)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(fit["inputs"], fit["expected"], "k--", lw=1, label="sqrt(1 - 1/m) (large-sample limit)")
    ax.plot(fit["inputs"], fit["residual"], "o", label="best tied fit, measured")
    ax.set(xlabel="number of inputs m", ylabel="relative residual", ylim=(-0.02, 1.02))
    ax.legend()
    return fig


def plot_growth(layers: pd.DataFrame):
    """E4: input channels and parameters per layer for each growth rate, beside a residual stage of
    matched width."""
    max_layers = int(layers.layer.max())
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    sns.lineplot(data=layers, x="layer", y="in_channels", hue="k", palette="colorblind", ax=axes[0])
    sns.lineplot(data=layers, x="layer", y="params", hue="k", palette="colorblind", ax=axes[1])
    for k, c in zip(sorted(layers.k.unique()), sns.color_palette("colorblind")):
        w = 2 * k + max_layers * k
        axes[0].axhline(w, color=c, ls=":", lw=1)
        axes[1].axhline(residual_block_params(w), color=c, ls=":", lw=1)
    axes[0].set(ylabel="input channels of the layer",
                title="dotted: residual stage of matched width")
    axes[1].set(ylabel="parameters of the layer / block", yscale="log")
    return fig


def plot_decodability(r2: pd.DataFrame):
    """E5: held-out R^2 of each earlier output, by model, trained (left) and at initialisation
    (right; the random-feature baseline), mean over seeds with 95% intervals."""
    states = [s for s in ("trained", "initialised")
              if s in set(r2.get("state", pd.Series(["trained"])))]
    fig, axes = plt.subplots(1, len(states), figsize=(5 * len(states), 3.2), sharey=True,
                             squeeze=False)
    for ax, state in zip(axes[0], states):
        part = r2[r2.state == state] if "state" in r2 else r2
        sns.barplot(data=part, x="source", y="R2", hue="model", palette="colorblind",
                    errorbar=("ci", 95), ax=ax)
        ax.set(ylim=(min(0, r2.R2.min()), 1.05), ylabel="held-out R^2", title=state,
               xlabel="earlier output decoded from the last input")
    for ax in axes[0][:-1]:
        ax.get_legend().remove()
    # off the bars
    sns.move_legend(axes[0][-1], "center left", bbox_to_anchor=(1.01, 0.5), title="model",
                    frameon=False)
    fig.tight_layout()
    return fig
