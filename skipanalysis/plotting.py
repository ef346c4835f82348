"""One look for every figure, and ``save_figure`` that files it under a stable name.

The palette is seaborn's ``colorblind`` (Okabe-Ito-like), safe for the common
forms of colour blindness. ``save_figure`` shows the figure inline (so the
notebook and the report carry it) and writes
``<report_dir>/figures/<notebook>-<name>.{png,svg,pdf}`` (PNG at 300 dpi), a
name that stays the same from run to run so a talk can cite it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import seaborn as sns

from . import outputs
from .provenance import atomic_path

FIGURE_FORMATS = ("png", "svg", "pdf")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

# Colours per connection pattern, so a family has one colour in every figure.
FAMILY_COLORS = dict(zip(
    ["plain", "residual", "highway", "dense", "post-norm", "pre-norm", "none", "add", "concat"],
    sns.color_palette("colorblind", 10),
))
# G3: the same hues, darker
FAMILY_COLORS.update(zip(["plain-bn", "residual-bn"], sns.color_palette("dark", 2)))


def set_theme() -> None:
    """Apply the project's seaborn theme (call once at the top of a notebook)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update({
        "figure.dpi": 100,
        "savefig.bbox": "tight",
        "axes.titlesize": "medium",
        "svg.hashsalt": "skipanalysis",  # stable SVG ids from run to run
        "pdf.compression": 6,
    })


def figure_path(report_dir: str | os.PathLike, notebook: str, name: str, fmt: str = "png") -> Path:
    """Where ``save_figure`` writes a figure: ``<report_dir>/figures/<notebook>-<name>.<fmt>``."""
    return Path(report_dir) / "figures" / f"{notebook}-{name}.{fmt}"


def save_figure(fig: matplotlib.figure.Figure, name: str, *, notebook: str,
                report_dir: str | os.PathLike,
                caption: str, show: bool = True) -> dict[str, Path]:
    """Write ``fig`` as PNG (300 dpi), SVG and PDF, then display it with its caption.

    Args:
        fig: the matplotlib figure.
        name: short stable name, lower case, digits, ``-`` and ``_`` (e.g. ``conv-identity-error``).
        notebook: the notebook's name, the file name's prefix.
        report_dir: the reports folder.
        caption: one or two sentences; the report numbers the figure and prints this under it.
        show: display inline (the report collects figures from the notebook's outputs).

    Returns:
        The written paths by format.
    """
    if not _NAME_RE.match(name):
        raise ValueError(
            f"figure name={name!r}: use lower-case letters, digits, '-' and '_' (it becomes a file "
            "name)")
    paths = {}
    for fmt in FIGURE_FORMATS:
        path = figure_path(report_dir, notebook, name, fmt)
        metadata = {"Creator": "skipanalysis"} if fmt != "png" else {}
        if fmt == "pdf":
            metadata["CreationDate"] = None  # reproducible bytes
        if fmt == "svg":
            metadata["Date"] = None
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=300 if fmt == "png" else None, metadata=metadata)
        paths[fmt] = path
    if show:
        from IPython.display import Markdown, display

        display(fig)
        # The metadata marks this output as a caption; report.py numbers it.
        display(Markdown(f"*{caption}* (`figures/{notebook}-{name}.png`)"),
                metadata=outputs.mark(
                    **{outputs.CAPTION: caption, outputs.FIGURE: f"{notebook}-{name}"}))
    plt.close(fig)
    return paths
