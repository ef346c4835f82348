"""The figures of notebook 07 (loss landscapes), drawn from the numbers its study measured
(``studies.loss_landscape``)."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..plotting import FAMILY_COLORS
from ..studies.loss_landscape import KINDS


def plot_hessian(maps: Mapping[tuple[str, int], np.ndarray], span: float) -> plt.Figure:
    """|lambda_min / lambda_max| over the grid, one panel per (kind, depth), on one colour scale (Li
    et al., Fig. 7)."""
    keys = sorted(maps, key=lambda k: (k[1], k[0]))
    depths = sorted({d for _, d in keys})
    top = max((float(np.nanmax(m)) for m in maps.values() if np.isfinite(m).any()),
              default=1.0) or 1.0
    fig, axes = plt.subplots(len(depths), len(KINDS), figsize=(4.5 * len(KINDS), 4 * len(depths)),
                             squeeze=False)
    for kind, depth in keys:
        ax = axes[depths.index(depth), KINDS.index(kind)]
        im = ax.imshow(maps[(kind, depth)].T, origin="lower", extent=(-span, span, -span, span),
                       vmin=0, vmax=top,
                       cmap="viridis")
        ax.set(title=f"{kind}-{depth}", xlabel="d1", ylabel="d2")
    fig.colorbar(im, ax=axes.ravel().tolist(), label="|lambda_min / lambda_max|")
    return fig


def plot_surfaces(surfaces: dict[tuple[str, int], np.ndarray], span: float,
                  shares: dict[tuple[str, int], float]
                  ) -> plt.Figure:
    """Contours of the log loss, one panel per (kind, depth): shallow on the top row, plain on the
    left."""
    keys = sorted(surfaces, key=lambda k: (k[1], k[0]))
    depths = sorted({d for _, d in keys})
    fig, axes = plt.subplots(len(depths), len(KINDS), figsize=(4.5 * len(KINDS), 4 * len(depths)),
                             squeeze=False)
    for (kind, depth) in keys:
        z = surfaces[(kind, depth)]
        axis = np.linspace(-span, span, z.shape[0])
        ax = axes[depths.index(depth), KINDS.index(kind)]
        ax.contour(axis, axis, np.log(z.T), levels=20, cmap="viridis")
        ax.plot(0, 0, "r+", ms=10)
        ax.set(title=f"{kind}-{depth}: non-convex share {shares[(kind, depth)]:.2f}", xlabel="d1",
               ylabel="d2")
    fig.tight_layout()
    return fig


def plot_slices(curves: dict[tuple[str, int], np.ndarray], span: float) -> plt.Figure:
    """1-D slices, one panel per depth, plain and residual in the project's family colours (log
    scale)."""
    depths = sorted({d for _, d in curves})
    fig, axes = plt.subplots(1, len(depths), figsize=(5 * len(depths), 3.2), sharey=True,
                             squeeze=False)
    for ax, d in zip(axes[0], depths):
        for kind in KINDS:
            if (kind, d) in curves:
                c = curves[(kind, d)]
                ax.plot(np.linspace(-span, span, len(c)), c, color=FAMILY_COLORS[kind], label=kind)
        ax.set(title=f"depth {d}", xlabel="step along d1", yscale="log")
        ax.legend()
    axes[0, 0].set_ylabel("training loss")
    fig.tight_layout()
    return fig


def plot_shares(shares: pd.DataFrame) -> plt.Figure:
    """Per-seed non-convex shares by depth, plain and residual side by side, seeds joined by thin
    lines."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    depths = sorted({d for _, d in shares.columns})
    for i, kind in enumerate(KINDS):
        x = np.arange(len(depths)) + (i - 0.5) * 0.12
        vals = np.array([shares[(kind, d)].to_numpy() for d in depths])  # depth x seed
        ax.plot(x, vals, color=FAMILY_COLORS[kind], alpha=0.35, lw=0.8)
        ax.plot(x, vals.mean(1), "o", color=FAMILY_COLORS[kind], ms=8, label=f"{kind} (mean)")
    ax.set_xticks(range(len(depths)), [str(d) for d in depths])
    ax.set(xlabel="depth", ylabel="non-convex share", ylim=(-0.03, 1.03))
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
