"""What each notebook's full profile trains, counted as its study code runs it (``work_01`` to
``work_08``, one a notebook, and the nets they train); ``estimate`` times the nets and prices it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..models import create
from ..models.factory import cifar_name
from ..models.unet import matched_decoder_mid
from ..studies import equivalence as eq
from ..studies import gradient_flow as gr
from ..studies import param_efficiency as ef
from ..studies import transformer_norm as npl

CIFAR10_TRAIN = 50_000  # n_train 0: the whole training set
# Hessian-vector products per Lanczos run (07's maps): an assumption, ARPACK stops when it converges
HVPS = 100


@dataclass(frozen=True)
class Net:
    """A net to time: ``family`` and ``depth`` (the cost is fitted linear in depth within a family),
    how to build it, and its input: ``shape`` of one example and ``tokens`` (an int vocabulary for
    sequence models, else 0)."""

    family: str
    depth: int
    build: Callable[[], nn.Module]
    shape: tuple[int, ...]
    tokens: int = 0


@dataclass(frozen=True)
class Work:
    """``runs`` runs of ``steps`` steps each at ``batch`` on ``net``: what a notebook trains (or,
    ``passes`` other than 3, evaluates: 1 a forward pass, 8 a Hessian-vector product's double
    backward; in forward-backward units of 3)."""

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
    """Training steps of ``epochs`` passes over ``n`` examples in batches of ``batch`` (the last
    batch kept)."""
    return round(epochs * -(-n // batch))


def selection_runs(seeds: int, lrs: list, lr_choice: str = "held-out") -> int:
    """Runs of an arm under a rate choice (``gradient_flow.train_study``'s ``lr_choice``): with one
    rate, the seeds; "held-out": every seed and the selection seed at every rate
    (``selection.selection_seed``); "each": every seed at every rate; "first": the first seed at
    every rate, the others at the chosen one."""
    if len(lrs) < 2:
        return seeds
    return {"held-out": seeds + len(lrs), "each": seeds * len(lrs),
            "first": seeds - 1 + len(lrs)}[lr_choice]


def cifar_net(kind: str, depth: int, size: int = 32, **kw: Any) -> Net:
    return Net(kind, depth, lambda: create(cifar_name(kind, depth), num_classes=10, **kw),
               (3, size, size))


def work_01(p: Mapping[str, Any]) -> list[Work]:
    """01: the depth grid (plain and residual at every depth), the deep highway net, the deep plain
    and highway nets at twice the budget (D1, D5) and D3's constructed nets trained
    ``construct_epochs``."""
    nb, n = "01_degradation", p["n_train"] or CIFAR10_TRAIN
    steps, built = steps_of(p["epochs"], n, p["batch_size"]), steps_of(p["construct_epochs"], n,
                                                                       p["batch_size"])
    deep, b, size = max(p["depths"]), p["batch_size"], p.get("image_size", 32)
    runs = selection_runs(p["seeds"], p["lrs"])
    out = [Work(nb, "depth grid", cifar_net(k, d, size), runs, steps, b)
           for k in ("plain", "residual")
           for d in sorted(p["depths"])]
    return out + [Work(nb, "deep highway net", cifar_net("highway", deep, size),
                       selection_runs(p["highway_seeds"], p["lrs"]), steps, b),
                  Work(nb, "D1: twice the budget", cifar_net("plain", deep, size), p["seeds"],
                       2 * steps, b),
                  Work(nb, "D5: twice the budget", cifar_net("highway", deep, size),
                       p["highway_seeds"], 2 * steps, b),
                  Work(nb, "D3: constructed nets", cifar_net("plain", deep, size), p["seeds"],
                       built, b)] + (
        # else D1's twice-the-budget runs serve as D3's scratch arm
        [] if p["construct_epochs"] == p["epochs"] else
        [Work(nb, "D3: from scratch", cifar_net("plain", deep, size), p["seeds"], steps + built,
              b)])


def work_02(p: Mapping[str, Any]) -> list[Work]:
    """02: the plain, residual and dense nets at ``train_depth`` and G6's connectivity sweep, each
    arm's seeds with the held-out rate choice."""
    nb, b, size = "02_gradient_flow", p["batch_size"], p["image_size"]
    runs = selection_runs(p["seeds"], p["lrs"], p.get("lr_choice", "held-out"))
    out = [Work(nb, "G1, G4: trained nets",
                Net(f, p["train_depth"], lambda f=f: gr.build_net(f, p["train_depth"]),
                                                 (3, size, size)), runs,
                steps_of(p["epochs"], p["n_train"], b), b)
           for f in ("plain", "residual", "dense")]
    sweep = gr.sweep_nets(p["sweep_layers"], p["sweep_every"])
    return out + [Work(nb, "G6: connectivity sweep", Net(f"sweep-{name}", p["sweep_layers"],
                                                         lambda spec=spec: create(spec[0],
                                                                                  **spec[1]),
                                                         (3, size, size)),
                       runs, steps_of(p["sweep_epochs"], p["n_train"], b), b) for name,
                  spec in sweep.items()]


def work_03(p: Mapping[str, Any]) -> list[Work]:
    """03: E5's one-stage ResNet and DenseNet, one run a seed (batch 64, as the notebook's
    recipe)."""
    nb, b, size, k = "03_equivalence", 64, p["image_size"], p["n_blocks"]
    nets = {"residual": (f"preact-stage-{k}", {"width": eq.matched_width(p["growth"], k)}),
            "dense": (f"dense-stage-{k}", {"growth": p["growth"]})}
    return [Work(nb, "E5: decodability nets",
                 Net(f"stage-{kind}", k, lambda s=spec: create(s[0], **s[1]),
                                                  (3, size, size)), p["seeds"],
                 steps_of(p["epochs"], p["n_train"], b),
                 b) for kind, spec in nets.items()]


def encoder(norm: str, depth: int, p: Mapping[str, Any], seq_len: int, vocab: int) -> Net:
    return Net(f"encoder-{norm}-{seq_len}", depth,
               lambda: npl.build(norm, depth, vocab, seq_len, p["d_model"],
                                                                      p["n_heads"], p["d_ff"], 0),
               (seq_len,), vocab)


def work_05(p: Mapping[str, Any]) -> list[Work]:
    """05: T2's warm-up grid (three arms, every rate and seed), T3's depth sweep at its rate (the
    grid's runs it reuses not counted twice), T4's control task (two arms), and, with ``text_path``,
    T2 and T3 again on text."""
    nb, b = "05_transformer_norm", p["batch_size"]
    steps, t3_steps = steps_of(p["epochs"], p["n_train"], b), steps_of(
        p["t3_epochs"] or p["epochs"], p["n_train"], b)
    # depth_sweep loads a warm-up grid run of the same placement, depth, rate, warm-up and epochs
    # for each seed both
    # lists hold (both start at the first seed)
    grid = {("post", 0), ("post", p["warmup"]), ("pre", 0)}
    same = p["t3_lr"] in p["lrs"] and (p["t3_epochs"] or p["epochs"]) == p["epochs"]
    reused = {norm: min(p["seeds"], p["t3_seeds"]) if same and (norm, p["t3_warmup"]) in grid else 0
              for norm in ("post", "pre")}

    def task(label: str, seq_len: int, vocab: int) -> list[Work]:
        out = [Work(nb, f"T2: warm-up grid{label}", encoder(norm, p["depth"], p, seq_len, vocab),
                    arms * len(p["lrs"]) * p["seeds"], steps, b) for norm,
               arms in (("post", 2), ("pre", 1))]
        sweep = [(norm, d, p["t3_seeds"] - (reused[norm] if d == p["depth"] else 0))
                 for norm in ("post", "pre")
                 for d in sorted(p["t3_depths"])]
        return out + [
            Work(nb, f"T3: depth sweep{label}", encoder(norm, d, p, seq_len, vocab), n, t3_steps, b)
                      for norm, d, n in sweep if n]

    out = task("", p["seq_len"], p["vocab"])
    out += [Work(nb, "T4: local control task",
                 encoder(norm, p["depth"], p, p["seq_len"], p["vocab"]), p["seeds"],
                 steps, b) for norm in ("post", "pre")]
    if p.get("text_path"):
        out += task(" (text)", p["text_seq_len"], 64)  # masked_text.text_task's 64 symbols
    return out


def work_06(p: Mapping[str, Any]) -> list[Work]:
    """06: each skip variant's seeds with the held-out rate choice, and its first seed again at
    twice the steps (the convergence check), on the training tiles with their elastic copies."""
    nb, b = "06_unet_skips", p["batch_size"]
    tiles = p["train_slices"] * (p["size"] // p["tile"]) ** 2 * (1 + p.get("elastic_copies", 0))
    steps = steps_of(p["epochs"], tiles, b)
    out = []
    for skip in ("concat", "add", "none"):
        net = Net(f"unet-{skip}", p["depth"], lambda s=skip: create(
            f"unet-{s}", in_channels=1, depth=p["depth"], base=p["base"],
            decoder_mid=matched_decoder_mid(s)),
            (1, p["tile"], p["tile"]))
        out += [
            Work(nb, "U1-U3: skip variants", net, selection_runs(p["seeds"], p["lrs"]), steps, b),
                Work(nb, "U1-U3: twice the steps", net, 1, 2 * steps, b)]
    return out


def work_07(p: Mapping[str, Any], p01: Mapping[str, Any]) -> list[Work]:
    """07 on 01's nets (trained by 01): the loss surfaces (plain and residual at the shallowest and
    deepest depth, every seed and direction pair, grid x grid points on ``eval_images``) and the
    Hessian maps (the deepest nets, first seed, ``hessian_grid``^2 points, two Lanczos runs of
    ``HVPS`` products each)."""
    # timed per image at 01's batch (the code evaluates all eval_images at once: the same per image
    # on a CPU, slower
    # than a card manages at that size)
    nb, size, b = "07_loss_landscape", p01["image_size"], p01["batch_size"]
    depths, seeds = (min(p01["depths"]), max(p01["depths"])), min(p["seeds"], p01["seeds"])
    evals = -(-p["eval_images"] // b)
    out = [Work(nb, "L1: loss surfaces", cifar_net(k, d, size), seeds * p["pairs"],
                p["grid"] ** 2 * evals, b, 1)
           for k in ("plain", "residual") for d in depths]
    if p["hessian_grid"]:
        out += [Work(nb, "L1: Hessian maps", cifar_net(k, max(depths), size), 1,
                     p["hessian_grid"] ** 2 * 2 * HVPS * evals, b, 8)
                for k in ("plain", "residual")]
    return out


def work_08(p: Mapping[str, Any]) -> list[Work]:
    """08: the rate grid (every model at every rate on ``lr_seeds`` seeds), the other seeds of every
    model, and the pair with its control on each scarce size; ``steps`` each."""
    nb, b, size = "08_param_efficiency", p["batch_size"], p["image_size"]
    specs = list(
        dict.fromkeys(p["models"] + p["pair"] + list(p["hybrids"]) + list(p["hybrids"].values())
                               + [p["control"]]))
    scarce = set(p["pair"] + [p["control"]])
    out = []
    for spec in specs:
        runs = len(p["lrs"]) * p["lr_seeds"] + (p["seeds"] - p["lr_seeds"])
        runs += len(p["small_sizes"]) * p["seeds"] if spec in scarce else 0
        depth = int(spec.rsplit("-", 1)[-1]) if spec.rsplit("-", 1)[-1].isdigit() else 0
        out.append(Work(nb, "A1-A3: models",
                        Net(spec, depth, lambda s=spec: ef.build_model(s), (3, size, size)),
                        runs, p["steps"], b))
    return out
