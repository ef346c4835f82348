"""The figures of notebook 04 (connection costs), drawn from the numbers its study measured
(``studies.cost``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..measure.machines import PUBLISHED_PEAKS
from ..studies.cost import roofline_points


def plot_layer_work(per_layer: pd.DataFrame):
    """C4: multiply-adds per layer split into the 1x1 bottleneck and the 3x3 convolution, and the
    1x1 share."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    axes[0].stackplot(per_layer.layer, per_layer.macs_1x1 / 1e6, per_layer.macs_3x3 / 1e6,
                      labels=["1x1 bottleneck", "3x3"])
    axes[0].set(xlabel="layer", ylabel="MMAC per image")
    axes[0].legend(loc="upper left")
    axes[1].plot(per_layer.layer, per_layer.share_1x1, "o-")
    axes[1].set(xlabel="layer", ylabel="share of the 1x1 convolution", ylim=(0, 1))
    return fig


def plot_memory(mem: pd.DataFrame):
    """Left: saved-for-backward bytes per block and depth (dashed on CUDA: the allocator's peak);
    right: forward+ backward time, median and interquartile band over the rounds."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    sns.lineplot(data=mem.assign(MB=mem.saved_bytes / 2**20), x="layers", y="MB", hue="block",
                 marker="o", ax=axes[0])
    if "cuda_peak_bytes" in mem:
        sns.lineplot(data=mem.assign(MB=mem.cuda_peak_bytes / 2**20), x="layers", y="MB",
                     hue="block", ax=axes[0],
                     linestyle="--", legend=False)
    rounds = mem.explode("times").assign(ms=lambda t: 1e3 * t.times.astype(float))
    sns.lineplot(data=rounds, x="layers", y="ms", hue="block", marker="o", estimator="median",
                 errorbar=("pi", 50),
                 ax=axes[1])
    axes[0].set(ylabel="saved for backward (MiB)")
    axes[1].set(ylabel="forward + backward (ms)")
    return fig


def plot_model_memory(mem: pd.DataFrame):
    """Saved-for-backward MiB of whole models against depth, one line per family."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    sns.lineplot(data=mem.assign(MiB=mem.saved_bytes / 2**20), x="depth", y="MiB", hue="family",
                 marker="o", ax=ax)
    for r in mem.itertuples():
        ax.annotate(r.model, (r.depth, r.saved_bytes / 2**20), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set(xlabel="depth (layers)",
           ylabel=f"saved for backward (MiB, batch {int(mem.batch.iloc[0])}, "
                                          f"{int(mem['size'].iloc[0])} px)")
    return fig


def plot_roofline(machines: dict[str, dict], flop_size: int):
    """One roofline panel per machine: its measured peaks, published peaks (projected, not
    measured), the models."""
    fig, axes = plt.subplots(1, len(machines), figsize=(5.2 * len(machines), 3.8), squeeze=False)
    xs = np.logspace(-1, 3, 100)
    for ax, (mid, hw) in zip(axes[0], machines.items()):
        pk = hw["numbers"]["peaks"]
        ax.plot(xs, np.minimum(pk["flops"], xs * pk["bytes_per_s"]), "k-", label="measured peaks")
        for (label, spec), ls in zip(PUBLISHED_PEAKS.items(), [":", "--", "-."]):
            ax.plot(xs, np.minimum(spec["flops"], xs * spec["bytes_per_s"]), color="grey", ls=ls,
                    lw=0.9,
                    label=f"{label}: projected, not measured")
        for _, p in roofline_points(hw, flop_size).iterrows():
            ax.plot(p.intensity, p.achieved_flops, "o", ms=7, label=p.model)
        title = (hw["fingerprint"].get("cpu_model", mid) if hw["numbers"]["device_type"] == "cpu"
                 else mid)
        ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP/byte)",
               ylabel="achieved FLOP/s",
               title=title)
        ax.legend(fontsize=6)
    return fig
