"""The figures of notebook 08 (parameter efficiency), drawn from the numbers its study measured
(``studies.param_efficiency``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .. import stats
from ..studies.param_efficiency import family


def plot_error_vs_params(runs: pd.DataFrame, n_train: int) -> tuple[plt.Figure, pd.DataFrame]:
    """Mean test error (95% interval over seeds, within [0, 1]) against parameters at ``n_train``
    images."""
    full = runs[runs.n_train == n_train]
    summ = stats.summarize(full, ["model"], "test_err", (0, 1)).set_index("model")
    summ["params"] = full.groupby("model").params.first()
    summ["family"] = [family(m) for m in summ.index]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for fam, g in summ.groupby("family"):
        ax.errorbar(g.params, 100 * g["mean"], yerr=[100 * (g["mean"] - g.ci_low).clip(lower=0),
                    100 * (g.ci_high - g["mean"]).clip(lower=0)], fmt="o", capsize=3, label=fam)
        for m, r in g.iterrows():
            ax.annotate(m, (r.params, 100 * r["mean"]), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
    ax.set(xscale="log", xlabel="parameters", ylabel="test error (%)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig, summ


def plot_tradeoff(summ: pd.DataFrame, costs: pd.DataFrame, hybrids: dict[str, str]) -> plt.Figure:
    """A3: test error (mean, 95% interval over seeds) against each cost axis, an arrow from each
    base to its hybrid; down and to the left is better on both."""
    from matplotlib.ticker import EngFormatter

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), sharey=True)
    axis = {"params": ("parameters", 1.0), "flops": ("forward MFLOPs per image", 1e-6),
            "step_s": ("training step (ms)", 1e3)}
    for ax, (col, (label, scale)) in zip(axes, axis.items()):
        for k, (h, b) in enumerate(hybrids.items()):
            pts = [(scale * costs.loc[m, col], 100 * summ.loc[m, "mean"]) for m in (b, h)]
            for m, (x, y) in zip((b, h), pts):
                ax.errorbar(x, y, yerr=[[y - 100 * summ.loc[m, "ci_low"]],
                                        [100 * summ.loc[m, "ci_high"] - y]],
                            fmt="o" if m == b else "s", color=f"C{k}", capsize=3, ms=5)
                ax.annotate(m, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
            ax.annotate("", xy=pts[1], xytext=pts[0],
                        arrowprops={"arrowstyle": "->", "color": f"C{k}", "lw": 1})
        ax.set(xlabel=label)
        ax.margins(x=0.15)
        if col == "params":
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    axes[0].set_ylabel("test error (%)")
    fig.tight_layout()
    return fig


def plot_scarce(runs: pd.DataFrame, pair: list[str]) -> plt.Figure:
    """Overfitting gap (test - train error) and test error against training-set size for the models
    in ``pair`` (the pair and its control), per seed."""
    sel = runs[runs.model.isin(pair)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, col, label in ((axes[0], "gap", "test - train error"),
                           (axes[1], "test_err", "test error")):
        sns.lineplot(data=sel, x="n_train", y=col, hue="model", units="seed", estimator=None,
                     lw=0.7, alpha=0.4,
                     ax=ax, legend=False)
        sns.lineplot(data=sel, x="n_train", y=col, hue="model", marker="o", errorbar=None, ax=ax)
        ax.set(xscale="log", xlabel="training images", ylabel=label)
        sizes = sorted(sel.n_train.unique())
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
        ax.xaxis.set_minor_locator(plt.NullLocator())
    fig.tight_layout()
    return fig
