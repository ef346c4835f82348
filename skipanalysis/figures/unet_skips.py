"""The figures of notebook 06 (U-Net skips), drawn from the numbers its study measured
(``studies.unet_skips``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from torch.utils.data import TensorDataset


def plot_iou_by_thickness(per_cat: pd.DataFrame, order: list[str], variants: list[str]):
    """U2: held-out IoU per membrane class and variant (means over seeds with 95% intervals)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    sns.barplot(data=per_cat, x="category", y="iou", hue="skip", order=order, hue_order=variants,
                palette="colorblind", errorbar=("ci", 95), ax=ax)
    ax.set(ylabel="held-out IoU", xlabel="membrane thickness", ylim=(0, 1))
    ax.legend(title="skip", loc="upper center", ncol=3)
    return fig


def plot_examples(test_set: TensorDataset, preds: dict, variants: list[str], seed: int,
                  crop: int = 96, rows: int = 3):
    """Crops of held-out images: input, ground truth, each variant's prediction (seed ``seed``) and
    the errors of the last variant (misses blue, false alarms red). Returns the figure."""
    x, t = test_set.tensors[0], test_set.tensors[1]
    rows = min(rows, len(x))
    fig, axes = plt.subplots(rows, 3 + len(variants), figsize=(2 * (3 + len(variants)), 2.1 * rows),
                             squeeze=False)
    for r in range(rows):
        axes[r, 0].imshow(x[r, 0, :crop, :crop], cmap="gray")
        axes[r, 1].imshow(t[r, 0, :crop, :crop], cmap="gray")
        for j, v in enumerate(variants):
            axes[r, 2 + j].imshow(preds[(v, seed)][r, 0, :crop, :crop], cmap="gray")
        err = preds[(variants[-1], seed)][r, 0, :crop, :crop].float() - t[r, 0, :crop, :crop]
        axes[r, -1].imshow(err, cmap="coolwarm", vmin=-1, vmax=1)
    for ax, title in zip(axes[0], ["input", "ground truth", *variants, f"{variants[-1]}: error"]):
        ax.set_title(title)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig
