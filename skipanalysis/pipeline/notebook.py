"""The notebook contract in code: validate parameters, pick the device, open the claim book.

Every notebook starts with ``ctx = setup(...)`` right after its parameters
cell: bad values stop there with a message that names the parameter, the value
and what is allowed, before any heavy work; the device and the machine
fingerprint are printed and go into the claims file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import outputs, plotting
from ..claims import ClaimBook
from ..hardware import device_label, fingerprint, select_device
from ..params import check as check_parameters
from ..params import check_common
from .runner import resolved_parameters


def _show_fingerprint(fp: dict[str, Any]) -> None:
    """Print the fingerprint; the output is tagged so the report moves it to its appendix."""
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            text = json.dumps(fp, indent=1, default=str)
            display({"text/plain": text}, raw=True,
                    metadata=outputs.mark(**{outputs.ROLE: outputs.FINGERPRINT}))
            return
    except ImportError:
        pass
    print(json.dumps(fp, indent=1, default=str))


def _register_latex_tables() -> None:
    """Give DataFrames a LaTeX rendering too, so tables stay tables in the PDF report."""
    try:
        import pandas as pd
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None:
        return

    def to_latex(df: pd.DataFrame) -> str:
        body = df.head(30).to_latex(float_format="%.4g", escape=True)
        return "\\begin{center}\n" + body + "\\end{center}"

    ip.display_formatter.formatters["text/latex"].for_type(pd.DataFrame, to_latex)


@dataclass
class Context:
    """What a notebook needs after setup: device, fingerprint, claim book and a bound
    ``save_figure``."""

    name: str
    device: torch.device
    fingerprint: dict[str, Any]
    claims: ClaimBook
    report_dir: Path
    save_figure: Callable[..., None]
    profile: str = "quick"
    notebooks: Path = Path(".")
    seed: int | None = None  # this notebook's first seed (None: it declares none)

    def parameters_of(self, other: str) -> dict[str, Any]:
        """Notebook ``other``'s parameters under this profile (defaults + profile section), its
        first seed replaced by this notebook's: 07 and 02 build the same run configs as 01 from
        them, so their nets load from the run store instead of training again, and ``-p seed=1``
        moves a notebook's every measurement."""

        values = resolved_parameters(self.notebooks / f"{other}.ipynb", self.profile)
        return values if self.seed is None or "seed" not in values else {**values,
                                                                         "seed": self.seed}

    def finish(self):
        """The notebook's last cell: stop if a claim it owns was not recorded, else show its claims
        table."""
        missing = self.claims.missing()
        if missing:
            raise RuntimeError(f"{self.name}: claims not recorded: {', '.join(missing)}")
        return self.claims.table()


def setup(name: str, values: Mapping[str, Any] | None = None, *, profile: str | None = None,
          device: str | None = None, report_dir: str | os.PathLike | None = None,
          seed: int | None = None) -> Context:
    """Check the notebook's parameters, select the device, print the fingerprint, open the claim
    book.

    ``values`` is the notebook's namespace (``setup("01_degradation", globals())``): every parameter
    its spec in ``skipanalysis.params`` declares is checked there, so a value edited by hand in
    JupyterLab is refused in one line, as the runner refuses it before a kernel starts. ``profile``,
    ``device``, ``report_dir`` and ``seed`` come from ``values`` unless given.
    """
    values = dict(values or {})
    profile = profile if profile is not None else values.get("profile")
    device = device if device is not None else values.get("device", "auto")
    report_dir = report_dir if report_dir is not None else values.get("report_dir", "../reports")
    own = seed if seed is not None else values.get("seed")  # None: the notebook declares no seed
    seed = own if own is not None else 0
    check_common({"profile": profile, "seed": seed})
    if values:
        check_parameters(
            name, {**values, "profile": profile, "device": device, "report_dir": str(report_dir),
                                "seed": seed})
    dev = select_device(device)
    fp = fingerprint(dev)
    label = device_label(fp)
    report_dir = Path(report_dir)
    plotting.set_theme()
    book = ClaimBook(notebook=name, report_dir=report_dir, device=label, profile=profile,
                     fingerprint=fp)
    print(f"notebook {name} | profile {profile} | device {label}")
    _show_fingerprint(fp)
    _register_latex_tables()
    def save_figure(fig, name_: str, caption: str, **kw) -> None:
        """Save and show ``fig`` under its stable name; returns nothing, so a cell ending with it
        prints no paths."""
        plotting.save_figure(fig, name_, notebook=name, report_dir=report_dir, caption=caption,
                             **kw)

    return Context(name, dev, fp, book, report_dir, save_figure, profile,
                   Path(__file__).resolve().parents[2] / "notebooks", own)
