"""``make plan PROFILE=full``: what the full profile of each notebook costs, from its runs counted and its nets timed.

Each notebook's work under its full parameters (``notebooks/params/full.yaml`` over its defaults) is counted as the
study code runs it: the runs of every arm, seed and rate-selection seed, each with its steps and batch (``*_work``
below, one function a notebook). Every net in that list is timed here for a few training steps at its own batch
(on a CPU at most 16, scaled) and input size (``torch.utils.benchmark``: forward, backward and an SGD step, at
fp32), so the hours are this
device's: on a GPU server ``make plan PROFILE=full DEVICE=cuda`` prints that card's, and ``make gpu-check`` keeps
its card's table in ``data/estimates/`` so that ``make plan PROFILE=full`` anywhere prints it beside this machine's.
Nets of one family and width are timed at two depths and the cost per step is taken as linear in depth between and
beyond them (a stack of equal blocks). A card's speed-up over a CPU depends on the net and the batch (notebook 04's
hardware files show an H200 launch-bound at batch 8), so no CPU-to-card factor is assumed: a card's hours come from
that card. A kept gpu-check (``data/gpu-check/``) timed only 01's nets there; its column prices 01 from those rates
and the other notebooks by 01's measured card-to-here ratio, a guess for their nets that the column's name states.

Left out, and said so in the table's note: measurements at initialisation (02's gradient profiles and shattering,
05's gradient norms), 04's timings (fixed minutes whatever the device), evaluations during training, reruns of
stuck runs (05's ``settle_stuck``), data loading.

    python -m skipanalysis.pipeline.estimate [--device cpu] [--only 01_degradation]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils import benchmark

from ..hardware import fingerprint
from ..models import create
from ..models.factory import cifar_name
from ..models.unet import matched_decoder_mid
from ..provenance import git_commit, write_between
from ..studies import equivalence as eq
from ..studies import gradient_flow as gr
from ..studies import param_efficiency as ef
from ..studies import transformer_norm as npl
from .runner import resolved_parameters

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ESTIMATES_DIR = ROOT / "data" / "estimates"
GPU_CHECK_DIR = ROOT / "data" / "gpu-check"
ORDER = ("01_degradation", "02_gradient_flow", "03_equivalence", "05_transformer_norm", "06_unet_skips",
         "07_loss_landscape", "08_param_efficiency")
CIFAR10_TRAIN = 50_000  # n_train 0: the whole training set
CPU_BATCH = 16  # the largest batch timed on a CPU (a card is timed at the run's own batch)
HVPS = 100  # Hessian-vector products per Lanczos run (07's maps): an assumption, ARPACK stops when it converges
LEFT_OUT = ("measurements at initialisation (02's gradient profiles and shattering, 05's gradient norms), 04's "
            "timings (fixed minutes on any device), evaluations during training, reruns of stuck runs, data loading")


@dataclass(frozen=True)
class Net:
    """A net to time: ``family`` and ``depth`` (the cost is fitted linear in depth within a family), how to build
    it, and its input: ``shape`` of one example and ``tokens`` (an int vocabulary for sequence models, else 0)."""

    family: str
    depth: int
    build: Callable[[], nn.Module]
    shape: tuple[int, ...]
    tokens: int = 0


@dataclass(frozen=True)
class Work:
    """``runs`` runs of ``steps`` steps each at ``batch`` on ``net``: what a notebook trains (or, ``passes`` other
    than 3, evaluates: 1 a forward pass, 8 a Hessian-vector product's double backward; in forward-backward units
    of 3)."""

    notebook: str
    what: str
    net: Net
    runs: int
    steps: int
    batch: int
    passes: int = 3

    @property
    def images(self) -> int:
        return self.runs * self.steps * self.batch


def steps_of(epochs: float, n: int, batch: int) -> int:
    """Training steps of ``epochs`` passes over ``n`` examples in batches of ``batch`` (the last batch kept)."""
    return round(epochs * -(-n // batch))


def selection_runs(seeds: int, lrs: list, lr_choice: str = "held-out") -> int:
    """Runs of an arm under a rate choice (``gradient_flow.train_study``'s ``lr_choice``): with one rate, the seeds;
    "held-out": every seed and the selection seed at every rate (``selection.selection_seed``); "each": every seed at
    every rate; "first": the first seed at every rate, the others at the chosen one."""
    if len(lrs) < 2:
        return seeds
    return {"held-out": seeds + len(lrs), "each": seeds * len(lrs), "first": seeds - 1 + len(lrs)}[lr_choice]


def cifar_net(kind: str, depth: int, size: int = 32, **kw: Any) -> Net:
    return Net(kind, depth, lambda: create(cifar_name(kind, depth), num_classes=10, **kw), (3, size, size))


def work_01(p: Mapping[str, Any]) -> list[Work]:
    """01: the depth grid (plain and residual at every depth), the deep highway net, the deep plain and highway nets
    at twice the budget (D1, D5) and D3's constructed nets trained ``construct_epochs``."""
    nb, n = "01_degradation", p["n_train"] or CIFAR10_TRAIN
    steps, built = steps_of(p["epochs"], n, p["batch_size"]), steps_of(p["construct_epochs"], n, p["batch_size"])
    deep, b, size = max(p["depths"]), p["batch_size"], p.get("image_size", 32)
    runs = selection_runs(p["seeds"], p["lrs"])
    out = [Work(nb, "depth grid", cifar_net(k, d, size), runs, steps, b) for k in ("plain", "residual")
           for d in sorted(p["depths"])]
    return out + [Work(nb, "deep highway net", cifar_net("highway", deep, size), selection_runs(p["highway_seeds"],
                                                                                                p["lrs"]), steps, b),
                  Work(nb, "D1: twice the budget", cifar_net("plain", deep, size), p["seeds"], 2 * steps, b),
                  Work(nb, "D5: twice the budget", cifar_net("highway", deep, size), p["highway_seeds"], 2 * steps, b),
                  Work(nb, "D3: constructed nets", cifar_net("plain", deep, size), p["seeds"], built, b)] + (
        [] if p["construct_epochs"] == p["epochs"] else  # else D1's twice-the-budget runs serve as D3's scratch arm
        [Work(nb, "D3: from scratch", cifar_net("plain", deep, size), p["seeds"], steps + built, b)])


def work_02(p: Mapping[str, Any]) -> list[Work]:
    """02: the plain, residual and dense nets at ``train_depth`` and G6's connectivity sweep, each arm's seeds with
    the held-out rate choice."""
    nb, b, size = "02_gradient_flow", p["batch_size"], p["image_size"]
    runs = selection_runs(p["seeds"], p["lrs"], p.get("lr_choice", "held-out"))
    out = [Work(nb, "G1, G4: trained nets", Net(f, p["train_depth"], lambda f=f: gr.build_net(f, p["train_depth"]),
                                                 (3, size, size)), runs, steps_of(p["epochs"], p["n_train"], b), b)
           for f in ("plain", "residual", "dense")]
    sweep = gr.sweep_nets(p["sweep_layers"], p["sweep_every"])
    return out + [Work(nb, "G6: connectivity sweep", Net(f"sweep-{name}", p["sweep_layers"],
                                                         lambda spec=spec: create(spec[0], **spec[1]),
                                                         (3, size, size)),
                       runs, steps_of(p["sweep_epochs"], p["n_train"], b), b) for name, spec in sweep.items()]


def work_03(p: Mapping[str, Any]) -> list[Work]:
    """03: E5's one-stage ResNet and DenseNet, one run a seed (batch 64, as the notebook's recipe)."""
    nb, b, size, k = "03_equivalence", 64, p["image_size"], p["n_blocks"]
    nets = {"residual": (f"preact-stage-{k}", {"width": eq.matched_width(p["growth"], k)}),
            "dense": (f"dense-stage-{k}", {"growth": p["growth"]})}
    return [Work(nb, "E5: decodability nets", Net(f"stage-{kind}", k, lambda s=spec: create(s[0], **s[1]),
                                                  (3, size, size)), p["seeds"], steps_of(p["epochs"], p["n_train"], b),
                 b) for kind, spec in nets.items()]


def encoder(norm: str, depth: int, p: Mapping[str, Any], seq_len: int, vocab: int) -> Net:
    return Net(f"encoder-{norm}-{seq_len}", depth, lambda: npl.build(norm, depth, vocab, seq_len, p["d_model"],
                                                                      p["n_heads"], p["d_ff"], 0), (seq_len,), vocab)


def work_05(p: Mapping[str, Any]) -> list[Work]:
    """05: T2's warm-up grid (three arms, every rate and seed), T3's depth sweep at its rate (the grid's runs it
    reuses not counted twice), T4's control task (two arms), and, with ``text_path``, T2 and T3 again on text."""
    nb, b = "05_transformer_norm", p["batch_size"]
    steps, t3_steps = steps_of(p["epochs"], p["n_train"], b), steps_of(p["t3_epochs"] or p["epochs"], p["n_train"], b)
    # depth_sweep loads a warm-up grid run of the same placement, depth, rate, warm-up and epochs for each seed both
    # lists hold (both start at the first seed)
    grid = {("post", 0), ("post", p["warmup"]), ("pre", 0)}
    same = p["t3_lr"] in p["lrs"] and (p["t3_epochs"] or p["epochs"]) == p["epochs"]
    reused = {norm: min(p["seeds"], p["t3_seeds"]) if same and (norm, p["t3_warmup"]) in grid else 0
              for norm in ("post", "pre")}

    def task(label: str, seq_len: int, vocab: int) -> list[Work]:
        out = [Work(nb, f"T2: warm-up grid{label}", encoder(norm, p["depth"], p, seq_len, vocab),
                    arms * len(p["lrs"]) * p["seeds"], steps, b) for norm, arms in (("post", 2), ("pre", 1))]
        sweep = [(norm, d, p["t3_seeds"] - (reused[norm] if d == p["depth"] else 0)) for norm in ("post", "pre")
                 for d in sorted(p["t3_depths"])]
        return out + [Work(nb, f"T3: depth sweep{label}", encoder(norm, d, p, seq_len, vocab), n, t3_steps, b)
                      for norm, d, n in sweep if n]

    out = task("", p["seq_len"], p["vocab"])
    out += [Work(nb, "T4: local control task", encoder(norm, p["depth"], p, p["seq_len"], p["vocab"]), p["seeds"],
                 steps, b) for norm in ("post", "pre")]
    if p.get("text_path"):
        out += task(" (text)", p["text_seq_len"], 64)  # masked_text.text_task's 64 symbols
    return out


def work_06(p: Mapping[str, Any]) -> list[Work]:
    """06: each skip variant's seeds with the held-out rate choice, and its first seed again at twice the steps
    (the convergence check), on the training tiles with their elastic copies."""
    nb, b = "06_unet_skips", p["batch_size"]
    tiles = p["train_slices"] * (p["size"] // p["tile"]) ** 2 * (1 + p.get("elastic_copies", 0))
    steps = steps_of(p["epochs"], tiles, b)
    out = []
    for skip in ("concat", "add", "none"):
        net = Net(f"unet-{skip}", p["depth"], lambda s=skip: create(
            f"unet-{s}", in_channels=1, depth=p["depth"], base=p["base"], decoder_mid=matched_decoder_mid(s)),
            (1, p["tile"], p["tile"]))
        out += [Work(nb, "U1-U3: skip variants", net, selection_runs(p["seeds"], p["lrs"]), steps, b),
                Work(nb, "U1-U3: twice the steps", net, 1, 2 * steps, b)]
    return out


def work_07(p: Mapping[str, Any], p01: Mapping[str, Any]) -> list[Work]:
    """07 on 01's nets (trained by 01): the loss surfaces (plain and residual at the shallowest and deepest depth,
    every seed and direction pair, grid x grid points on ``eval_images``) and the Hessian maps (the deepest nets,
    first seed, ``hessian_grid``^2 points, two Lanczos runs of ``HVPS`` products each)."""
    # timed per image at 01's batch (the code evaluates all eval_images at once: the same per image on a CPU, slower
    # than a card manages at that size)
    nb, size, b = "07_loss_landscape", p01["image_size"], p01["batch_size"]
    depths, seeds = (min(p01["depths"]), max(p01["depths"])), min(p["seeds"], p01["seeds"])
    evals = -(-p["eval_images"] // b)
    out = [Work(nb, "L1: loss surfaces", cifar_net(k, d, size), seeds * p["pairs"], p["grid"] ** 2 * evals, b, 1)
           for k in ("plain", "residual") for d in depths]
    if p["hessian_grid"]:
        out += [Work(nb, "L1: Hessian maps", cifar_net(k, max(depths), size), 1,
                     p["hessian_grid"] ** 2 * 2 * HVPS * evals, b, 8) for k in ("plain", "residual")]
    return out


def work_08(p: Mapping[str, Any]) -> list[Work]:
    """08: the rate grid (every model at every rate on ``lr_seeds`` seeds), the other seeds of every model, and the
    pair with its control on each scarce size; ``steps`` each."""
    nb, b, size = "08_param_efficiency", p["batch_size"], p["image_size"]
    specs = list(dict.fromkeys(p["models"] + p["pair"] + list(p["hybrids"]) + list(p["hybrids"].values())
                               + [p["control"]]))
    scarce = set(p["pair"] + [p["control"]])
    out = []
    for spec in specs:
        runs = len(p["lrs"]) * p["lr_seeds"] + (p["seeds"] - p["lr_seeds"])
        runs += len(p["small_sizes"]) * p["seeds"] if spec in scarce else 0
        depth = int(spec.rsplit("-", 1)[-1]) if spec.rsplit("-", 1)[-1].isdigit() else 0
        out.append(Work(nb, "A1-A3: models", Net(spec, depth, lambda s=spec: ef.build_model(s), (3, size, size)),
                        runs, p["steps"], b))
    return out


def full_work(names: tuple[str, ...] = ORDER) -> list[Work]:
    """Every notebook's work in ``names`` under its full parameters."""
    p = {name: resolved_parameters(NOTEBOOKS / f"{name}.ipynb", "full") for name in ORDER}
    makers = {"01_degradation": work_01, "02_gradient_flow": work_02, "03_equivalence": work_03,
              "05_transformer_norm": work_05, "06_unet_skips": work_06, "08_param_efficiency": work_08,
              "07_loss_landscape": lambda q: work_07(q, p["01_degradation"])}
    return [w for name in names for w in makers[name](p[name])]


def step_seconds(net: Net, batch: int, device: torch.device, min_run_time: float = 0.5) -> float:
    """Median seconds of one training step of ``net`` (forward, backward, SGD step) on random inputs of ``batch``
    (``torch.utils.benchmark``, after one warm-up step)."""
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
    return float(timer.blocked_autorange(min_run_time=min_run_time).median) if device.type == "cpu" else float(
        timer.adaptive_autorange(min_run_time=min_run_time).median)


def depth_fit(depths: list[int], seconds: list[float], depth: int) -> float:
    """Seconds per step at ``depth`` from those measured at ``depths``: linear through them (one depth: that
    step's time), never below the cheapest measured."""
    if len(depths) == 1:
        return seconds[0]
    slope, icpt = np.polyfit(np.asarray(depths, float), np.asarray(seconds, float), 1)
    return float(max(icpt + slope * depth, min(seconds)))


def timed_depths(depths: list[int]) -> list[int]:
    """Which depths of a family to time: the shallowest and the middle one (two points fix a line; the deepest
    costs most to time and is reached by the fit)."""
    ds = sorted(set(depths))
    return ds if len(ds) <= 2 else [ds[0], ds[len(ds) // 2]]


def price(work: list[Work], device: torch.device, min_run_time: float = 0.5,
          timer: Callable[[Net, int, torch.device], float] | None = None) -> pd.DataFrame:
    """``work`` as a table with each row's seconds per step on ``device`` (``step_seconds``, or ``timer``) and its
    hours: a family's nets timed at ``timed_depths`` of the depths it needs at that batch, the rest fitted. On a
    CPU a net is timed at a batch of at most ``CPU_BATCH`` and its time scaled to the batch in proportion."""
    timer = timer or (lambda net, batch, dev: step_seconds(net, batch, dev, min_run_time))
    if device.type == "cpu":  # a CPU's time per example hardly depends on the batch: time a small one, scale it
        base = timer
        timer = lambda net, batch, dev: base(net, min(batch, CPU_BATCH), dev) * batch / min(batch, CPU_BATCH)  # noqa: E731
    by_family: dict[tuple[str, int], dict[int, Net]] = {}
    for w in work:
        by_family.setdefault((w.net.family, w.batch), {})[w.net.depth] = w.net
    measured: dict[tuple[str, int], dict[int, float]] = {
        key: {d: timer(nets[d], key[1], device) for d in timed_depths(list(nets))} for key, nets in by_family.items()}
    rows = []
    for w in work:
        m = measured[(w.net.family, w.batch)]
        s = m.get(w.net.depth) or depth_fit(list(m), list(m.values()), w.net.depth)
        rows.append({"notebook": w.notebook, "what": w.what, "family": w.net.family, "depth": w.net.depth,
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
        out[d["where"]] = pd.Series({r["notebook"]: r["hours"] for r in d["table"] if r["notebook"] != "all"})
    return out


def gpu_check_tables(priced: pd.DataFrame, folder: Path = GPU_CHECK_DIR) -> dict[str, pd.Series]:
    """Hours per notebook on the cards of the kept gpu-check files (``data/gpu-check/*.json``: 01's nets' images/s
    there, one run at a time): 01's rows from those rates (linear in depth per kind, as ``depth_fit``), every other
    notebook's hours here times 01's ratio of card hours to hours here (a guess for their nets, said in the column's
    name). Empty without 01 in ``priced``."""
    rows01 = priced[priced.notebook == "01_degradation"]
    out = {}
    for f in sorted(Path(folder).glob("*.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        rates: dict[str, dict[int, float]] = {}
        for call in d.get("calls", []):  # a later call's rates replace an earlier one's, kind by kind
            kinds = {r["kind"] for r in call.get("rates", [])}
            for kind in kinds:
                rates[kind] = {r["depth"]: 1.0 / r["alone"] for r in call["rates"] if r["kind"] == kind}
        if rows01.empty or not set(rows01.family) <= set(rates):
            continue
        card01 = sum(r.runs * r.steps * r.batch * depth_fit(list(rates[r.family]), list(rates[r.family].values()),
                                                             r.depth) for r in rows01.itertuples()) / 3600
        ratio = card01 / rows01.hours.sum()
        hours = priced.groupby("notebook", sort=False).hours.sum() * ratio
        hours["01_degradation"] = card01
        name = d.get("machine", {}).get("gpu", f.stem).split(",")[0]
        out[f"{name} (01 measured; others x {ratio:.4f})"] = hours
    return out


def table(priced: pd.DataFrame, others: Mapping[str, pd.Series] | None = None) -> pd.DataFrame:
    """Hours per notebook here (``price``'s rows summed), and beside them those measured elsewhere (``others``,
    ``card_tables``)."""
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
    path.write_text(json.dumps({"device": str(device), "where": where_of(device), "rows": priced.to_dict("records"),
                                "table": summary.reset_index().to_dict("records"), "left_out": LEFT_OUT,
                                "hvps": HVPS}, indent=1, default=str) + "\n", encoding="utf-8")
    return path


def render(priced: pd.DataFrame, summary: pd.DataFrame, device: torch.device) -> str:
    """The rows and the table as text."""
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        rows = priced.assign(s_per_step=priced.s_per_step.round(3), hours=priced.hours.round(2)).to_string(index=False)
        return (f"{rows}\n\n[estimate] hours of the full profile, one run at a time on {device} ({where_of(device)}):\n"
                f"{summary.round(1).to_string()}")


ESTIMATE_BEGIN = "<!-- full estimate: begin (PROFILE=full make plan INTO=README.md writes this table) -->"
ESTIMATE_END = "<!-- full estimate: end -->"


def markdown(summary: pd.DataFrame, device: torch.device) -> str:
    """The hours per notebook as a Markdown table, with where and at which commit they were measured."""
    cols = list(summary.columns.drop("images_millions"))
    lines = ["| notebook | " + " | ".join(c.replace("hours", "hours here", 1) if c == "hours" else c for c in cols)
             + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in summary.iterrows():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:,.0f}" if c == "runs" else f"{row[c]:,.1f}" for c in cols)
                     + " |")
    return "\n".join(lines) + (f"\n\nHours one run at a time; here: {where_of(device)}, commit "
                                f"{git_commit(ROOT)[:7]}. Not counted: {LEFT_OUT}.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skipanalysis.pipeline.estimate", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda: where to time the nets")
    ap.add_argument("--only", action="append", choices=ORDER, help="these notebooks only (repeatable)")
    ap.add_argument("--min-run-time", type=float, default=0.5, help="seconds of timing per net (torch benchmark)")
    ap.add_argument("--json", default=None, help="also write the rows and the table here")
    ap.add_argument("--into", default=None, help="also write the table between the estimate marks of this file")
    ap.add_argument("--compare", action="store_true", help=f"beside the tables kept in {ESTIMATES_DIR}")
    args = ap.parse_args(argv)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        print(f"[estimate] --device {args.device} is not allowed; choose cpu or cuda", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"[estimate] --device {args.device}: torch sees no CUDA device here", file=sys.stderr)
        return 2
    names = tuple(n for n in ORDER if not args.only or n in args.only)
    work = full_work(names)
    print(f"[estimate] the full profile of {len(names)} notebook(s): {len(work)} kinds of run; timing their nets on "
          f"{device} ...", flush=True)
    priced = price(work, device, args.min_run_time)
    others = {**card_tables(), **gpu_check_tables(priced)} if args.compare else {}
    summary = table(priced, others)
    print(render(priced, summary, device))
    if args.compare and not others:
        print(f"[estimate] no other device's table in {ESTIMATES_DIR} or {GPU_CHECK_DIR}: make gpu-check on a GPU "
              "keeps one there")
    print(f"[estimate] not counted: {LEFT_OUT}; 07's Hessian maps assume {HVPS} products per Lanczos run")
    if args.json:
        save(Path(args.json), device, priced, summary)
    if args.into and not write_between(args.into, ESTIMATE_BEGIN, ESTIMATE_END, markdown(summary, device)):
        print(f"[estimate] {args.into}: no {ESTIMATE_BEGIN} ... {ESTIMATE_END} marks to write between", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
