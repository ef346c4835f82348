"""``make plan PROFILE=full``: what the full profile of each notebook costs, from its runs counted
and its nets timed.

Each notebook's work under its full parameters (``notebooks/params/full.yaml`` over its defaults) is
counted as the study code runs it: the runs of every arm, seed and rate-selection seed, each with
its steps and batch (``work_*`` in ``estimate_work``, one function a notebook). Every net in that
list is timed here for a few training steps at its own batch (on a CPU at most 16, scaled) and input
size (``torch.utils.benchmark``: forward, backward and an SGD step, at fp32), so the hours are this
device's: on a GPU server ``make plan PROFILE=full DEVICE=cuda`` prints that card's, and ``make
gpu-check`` keeps its card's table in ``data/estimates/`` so that ``make plan PROFILE=full``
anywhere prints it beside this machine's. Nets of one family and width are timed at two depths and
the cost per step is taken as linear in depth between and beyond them (a stack of equal blocks). A
card's speed-up over a CPU depends on the net and the batch (notebook 04's hardware files show an
H200 launch-bound at batch 8), so no CPU-to-card factor is assumed: a card's hours come from that
card. A kept gpu-check (``data/gpu-check/``) timed only 01's nets there; its column prices 01 from
those rates and the other notebooks by 01's measured card-to-here ratio, a guess for their nets that
the column's name states.

Left out, and said so in the table's note: measurements at initialisation (02's gradient profiles
and shattering, 05's gradient norms), 04's timings (fixed minutes whatever the device), evaluations
during training, reruns of stuck runs (05's ``settle_stuck``), data loading.

    python -m skipanalysis.pipeline.estimate [--device cpu] [--only 01_degradation]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils import benchmark

from ..hardware import fingerprint
from ..provenance import git_commit, write_between
from .estimate_work import (
    HVPS,
    Net,
    Work,
    work_01,
    work_02,
    work_03,
    work_05,
    work_06,
    work_07,
    work_08,
)
from .runner import resolved_parameters

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ESTIMATES_DIR = ROOT / "data" / "estimates"
GPU_CHECK_DIR = ROOT / "data" / "gpu-check"
ORDER = ("01_degradation", "02_gradient_flow", "03_equivalence", "05_transformer_norm",
         "06_unet_skips",
         "07_loss_landscape", "08_param_efficiency")
CPU_BATCH = 16  # the largest batch timed on a CPU (a card is timed at the run's own batch)
LEFT_OUT = ("measurements at initialisation (02's gradient profiles and shattering, 05's gradient "
            "norms), 04's timings (fixed minutes on any device), evaluations during training, "
            "reruns of stuck runs, data loading")


def full_work(names: tuple[str, ...] = ORDER) -> list[Work]:
    """Every notebook's work in ``names`` under its full parameters."""
    p = {name: resolved_parameters(NOTEBOOKS / f"{name}.ipynb", "full") for name in ORDER}
    makers = {"01_degradation": work_01, "02_gradient_flow": work_02, "03_equivalence": work_03,
              "05_transformer_norm": work_05, "06_unet_skips": work_06,
              "08_param_efficiency": work_08,
              "07_loss_landscape": lambda q: work_07(q, p["01_degradation"])}
    return [w for name in names for w in makers[name](p[name])]


def step_seconds(net: Net, batch: int, device: torch.device, min_run_time: float = 0.5) -> float:
    """Median seconds of one training step of ``net`` (forward, backward, SGD step) on random inputs
    of ``batch`` (``torch.utils.benchmark``, after one warm-up step)."""
    model = net.build().to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    if net.tokens:
        x = torch.randint(0, net.tokens - 1, (batch, *net.shape), generator=g).to(device)
    else:
        x = torch.randn(batch, *net.shape, generator=g).to(device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = model(x)
        out.float().square().mean().backward()
        opt.step()

    step()
    timer = benchmark.Timer(stmt="step()", globals={"step": step})
    if device.type == "cpu":
        return float(timer.blocked_autorange(min_run_time=min_run_time).median)
    return float(timer.adaptive_autorange(min_run_time=min_run_time).median)


def depth_fit(depths: list[int], seconds: list[float], depth: int) -> float:
    """Seconds per step at ``depth`` from those measured at ``depths``: linear through them (one
    depth: that step's time), never below the cheapest measured."""
    if len(depths) == 1:
        return seconds[0]
    slope, icpt = np.polyfit(np.asarray(depths, float), np.asarray(seconds, float), 1)
    return float(max(icpt + slope * depth, min(seconds)))


def timed_depths(depths: list[int]) -> list[int]:
    """Which depths of a family to time: the shallowest and the middle one (two points fix a line;
    the deepest costs most to time and is reached by the fit)."""
    ds = sorted(set(depths))
    return ds if len(ds) <= 2 else [ds[0], ds[len(ds) // 2]]


def price(work: list[Work], device: torch.device, min_run_time: float = 0.5,
          timer: Callable[[Net, int, torch.device], float] | None = None) -> pd.DataFrame:
    """``work`` as a table with each row's seconds per step on ``device`` (``step_seconds``, or
    ``timer``) and its hours: a family's nets timed at ``timed_depths`` of the depths it needs at
    that batch, the rest fitted. On a CPU a net is timed at a batch of at most ``CPU_BATCH`` and its
    time scaled to the batch in proportion."""
    timer = timer or (lambda net, batch, dev: step_seconds(net, batch, dev, min_run_time))
    # a CPU's time per example hardly depends on the batch: time a small one, scale it
    if device.type == "cpu":
        base = timer
        timer = lambda net, batch, dev: (  # noqa: E731
            base(net, min(batch, CPU_BATCH), dev) * batch / min(batch, CPU_BATCH))
    by_family: dict[tuple[str, int], dict[int, Net]] = {}
    for w in work:
        by_family.setdefault((w.net.family, w.batch), {})[w.net.depth] = w.net
    measured: dict[tuple[str, int], dict[int, float]] = {
        key: {d: timer(nets[d], key[1], device) for d in timed_depths(list(nets))} for key,
        nets in by_family.items()}
    rows = []
    for w in work:
        m = measured[(w.net.family, w.batch)]
        s = m.get(w.net.depth) or depth_fit(list(m), list(m.values()), w.net.depth)
        rows.append(
            {"notebook": w.notebook, "what": w.what, "family": w.net.family, "depth": w.net.depth,
                     "runs": w.runs, "steps": w.steps, "batch": w.batch,
                     "passes": w.passes, "timed": w.net.depth in m, "s_per_step": s,
                     "hours": w.runs * w.steps * s * w.passes / 3 / 3600})
    return pd.DataFrame(rows)


def card_tables(folder: Path = ESTIMATES_DIR) -> dict[str, pd.Series]:
    """Hours per notebook measured on other devices (``make gpu-check`` keeps its card's table in
    ``data/estimates/``): ``{where: hours by notebook}``."""
    out = {}
    for f in sorted(Path(folder).glob("*.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        out[d["where"]] = pd.Series(
            {r["notebook"]: r["hours"] for r in d["table"] if r["notebook"] != "all"})
    return out


def gpu_check_tables(priced: pd.DataFrame, folder: Path = GPU_CHECK_DIR) -> dict[str, pd.Series]:
    """Hours per notebook on the cards of the kept gpu-check files (``data/gpu-check/*.json``: 01's
    nets' images/s there, one run at a time): 01's rows from those rates (linear in depth per kind,
    as ``depth_fit``), every other notebook's hours here times 01's ratio of card hours to hours
    here (a guess for their nets, said in the column's name). Empty without 01 in ``priced``."""
    rows01 = priced[priced.notebook == "01_degradation"]
    out = {}
    for f in sorted(Path(folder).glob("*.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        rates: dict[str, dict[int, float]] = {}
        # a later call's rates replace an earlier one's, kind by kind
        for call in d.get("calls", []):
            kinds = {r["kind"] for r in call.get("rates", [])}
            for kind in kinds:
                rates[kind] = {r["depth"]: 1.0 / r["alone"] for r in call["rates"]
                               if r["kind"] == kind}
        if rows01.empty or not set(rows01.family) <= set(rates):
            continue
        card01 = sum(r.runs * r.steps * r.batch * depth_fit(list(rates[r.family]),
                                                            list(rates[r.family].values()),
                                                             r.depth)
                     for r in rows01.itertuples()) / 3600
        ratio = card01 / rows01.hours.sum()
        hours = priced.groupby("notebook", sort=False).hours.sum() * ratio
        hours["01_degradation"] = card01
        name = d.get("machine", {}).get("gpu", f.stem).split(",")[0]
        out[f"{name} (01 measured; others x {ratio:.4f})"] = hours
    return out


def table(priced: pd.DataFrame, others: Mapping[str, pd.Series] | None = None) -> pd.DataFrame:
    """Hours per notebook here (``price``'s rows summed), and beside them those measured elsewhere
    (``others``, ``card_tables``)."""
    out = priced.groupby("notebook", sort=False).agg(runs=("runs", "sum"), hours=("hours", "sum"))
    out["images_millions"] = priced.assign(i=priced.runs * priced.steps * priced.batch).groupby(
        "notebook", sort=False).i.sum() / 1e6
    for where, hours in (others or {}).items():
        out[f"hours on {where}"] = hours.reindex(out.index)
    out.loc["all"] = out.sum(numeric_only=True)
    return out


def where_of(device: torch.device) -> str:
    """The device in words: the card's name, or the CPU's model and threads."""
    fp = fingerprint(device)
    if device.type == "cuda":
        return (fp.get("cuda_devices") or [{}])[0].get("name", "cuda")
    return f"{fp.get('cpu_model')}, {fp.get('torch_threads')} threads"


def save(path: Path, device: torch.device, priced: pd.DataFrame, summary: pd.DataFrame) -> Path:
    """The rows and the table as JSON at ``path`` (what ``card_tables`` reads back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(
        {"device": str(device), "where": where_of(device), "rows": priced.to_dict("records"),
                                "table": summary.reset_index().to_dict("records"),
                                "left_out": LEFT_OUT,
                                "hvps": HVPS}, indent=1, default=str) + "\n", encoding="utf-8")
    return path


def render(priced: pd.DataFrame, summary: pd.DataFrame, device: torch.device) -> str:
    """The rows and the table as text."""
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        rows = priced.assign(s_per_step=priced.s_per_step.round(3),
                             hours=priced.hours.round(2)).to_string(index=False)
        return (
            f"{rows}\n\n[estimate] hours of the full profile, one run at a time on {device} "
            f"({where_of(device)}):\n{summary.round(1).to_string()}")


ESTIMATE_BEGIN = (
    "<!-- full estimate: begin (PROFILE=full make plan INTO=README.md writes this table) -->")
ESTIMATE_END = "<!-- full estimate: end -->"


def markdown(summary: pd.DataFrame, device: torch.device) -> str:
    """The hours per notebook as a Markdown table, with where and at which commit they were
    measured."""
    cols = list(summary.columns.drop("images_millions"))
    lines = ["| notebook | "
             + " | ".join(c.replace("hours", "hours here", 1) if c == "hours" else c for c in cols)
             + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in summary.iterrows():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:,.0f}" if c == "runs"
                                                 else f"{row[c]:,.1f}" for c in cols)
                     + " |")
    return "\n".join(lines) + (f"\n\nHours one run at a time; here: {where_of(device)}, commit "
                                f"{git_commit(ROOT)[:7]}. Not counted: {LEFT_OUT}.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skipanalysis.pipeline.estimate",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda: where to time the nets")
    ap.add_argument("--only", action="append", choices=ORDER,
                    help="these notebooks only (repeatable)")
    ap.add_argument("--min-run-time", type=float, default=0.5,
                    help="seconds of timing per net (torch benchmark)")
    ap.add_argument("--json", default=None, help="also write the rows and the table here")
    ap.add_argument("--into", default=None,
                    help="also write the table between the estimate marks of this file")
    ap.add_argument("--compare", action="store_true",
                    help=f"beside the tables kept in {ESTIMATES_DIR}")
    args = ap.parse_args(argv)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        print(f"[estimate] --device {args.device} is not allowed; choose cpu or cuda",
              file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"[estimate] --device {args.device}: torch sees no CUDA device here", file=sys.stderr)
        return 2
    names = tuple(n for n in ORDER if not args.only or n in args.only)
    work = full_work(names)
    print(
        f"[estimate] the full profile of {len(names)} notebook(s): {len(work)} kinds of run; "
        f"timing their nets on {device} ...", flush=True)
    priced = price(work, device, args.min_run_time)
    others = {**card_tables(), **gpu_check_tables(priced)} if args.compare else {}
    summary = table(priced, others)
    print(render(priced, summary, device))
    if args.compare and not others:
        print(
            f"[estimate] no other device's table in {ESTIMATES_DIR} or {GPU_CHECK_DIR}: make "
            "gpu-check on a GPU keeps one there")
    print(
        f"[estimate] not counted: {LEFT_OUT}; 07's Hessian maps assume {HVPS} products per Lanczos "
        "run")
    if args.json:
        save(Path(args.json), device, priced, summary)
    if args.into and not write_between(args.into, ESTIMATE_BEGIN, ESTIMATE_END,
                                       markdown(summary, device)):
        print(f"[estimate] {args.into}: no {ESTIMATE_BEGIN} ... {ESTIMATE_END} marks to write "
              "between", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
