"""Gradient-flow probes and the studies of notebook 02: per-layer norms, shattering, lesions and
path lengths.

- Per-layer gradient norms of every convolution (He et al. 2016 on why BN and He initialisation keep
  plain-net gradients alive; seed text 002's FAQ), at initialisation and during training
  (``train_study``). Probes always run in fp32 and leave the model as they found it (batch-norm
  statistics included).
- Shattered gradients (Balduzzi et al. 2017, "The Shattered Gradients Problem"): gradients with
  respect to inputs along a 1-D line through input space, and how quickly neighbours decorrelate
  with depth (``shattering_study``).
- Lesions and path lengths (Veit et al. 2016, "Residual Networks Behave Like Ensembles of Relatively
  Shallow Networks", sections 4-6): delete blocks at test time (``lesion_study``); and the gradient
  carried by paths of each length, measured by back-propagating through the residual branch of k
  randomly chosen blocks and through the shortcut of all others (``path_gradients``); these are in
  ``gradient_flow_lesions``.
- The connectivity sweep (seed text 001): a chain with a shortcut every s layers, from plain to a
  dense block (``sweep_nets`` with ``train_study``).

What each study trains is a typed design (``ProbedTraining``, ``InitProfiles``, ``Shattering``,
``Lesioning``) beside the ``setting.Setting`` its runs share. The tables and claims read from their
results are ``gradient_flow_claims``'s.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset

from .. import fitting, keys, runs
from .. import train as tr
from ..measure.probes import (
    ProbeDuringTraining,
    conv_grad_norms,
    line_gradients,
    neighbour_correlation,
)
from ..models import cifar_name, create
from ..params import LR_CHOICES
from ..selection import best_rate, selection_seed
from ..setting import Setting


def net_spec(family: str, depth: int, bn: bool = True, num_classes: int = 10, in_channels: int = 3
             ) -> tuple[str, dict]:
    """One network by family as ``(factory name, arguments)``: ``plain``/``residual``/``highway``
    (the CIFAR 6n+2 family, with or without batch norm) or ``dense`` (DenseNet-BC with the 6N+4
    depth nearest ``depth``, growth 12, always with batch norm)."""
    if family == "dense":
        return f"densenet-{dense_layers(depth)}", {"num_classes": num_classes,
                                                   "in_channels": in_channels}
    return cifar_name(family, depth), {"bn": bn, "num_classes": num_classes,
                                       "in_channels": in_channels}


def build_net(family: str, depth: int, bn: bool = True, num_classes: int = 10,
              in_channels: int = 3) -> nn.Module:
    """The network of ``net_spec``, built by ``models.create``."""
    name, kwargs = net_spec(family, depth, bn, num_classes, in_channels)
    return create(name, **kwargs)


def dense_layers(depth: int) -> int:
    """Layers per dense block of the DenseNet-BC (depth 6N+4) nearest a given depth."""
    return max(1, round((depth - 4) / 6))


def init_profiles(families: Iterable[str], depths: Iterable[int], seeds: Iterable[int],
                  data: TensorDataset,
                  bns: Iterable[bool] = (True, False), grad_batches: int = 2, batch_size: int = 64,
                  device: torch.device | str = "cpu") -> pd.DataFrame:
    """Per-layer gradient norms at initialisation for every family, depth, batch-norm setting and
    seed.

    Seed ``s`` initialises every net built for it (``train.seed_everything(s)``), so arms are paired
    by seed. ``dense`` is only built with batch norm. Returns ``conv_grad_norms`` rows with family,
    depth, bn, seed and ``step`` = 0.
    """
    num_classes, in_ch = int(data.tensors[1].max()) + 1, data.tensors[0].shape[1]
    rows = []
    for fam in families:
        for depth in depths:
            for bn in bns:
                if fam == "dense" and not bn:
                    continue
                for s in seeds:
                    tr.seed_everything(s)
                    m = build_net(fam, depth, bn, num_classes, in_ch)
                    rows.append(conv_grad_norms(m, data, grad_batches, batch_size, device)
                                .assign(family=fam, depth=depth, bn=bn, seed=s, step=0))
    return pd.concat(rows, ignore_index=True)


# --- training with gradient probes ----------------------------------------------------------------


def total_steps(n_train: int, cfg: tr.TrainConfig) -> int:
    """The number of steps ``train.train`` takes for ``cfg`` on ``n_train`` examples."""
    return max(1, round(cfg.epochs * math.ceil(n_train / cfg.batch_size)))


def steps_to_fit(history: pd.DataFrame, fit: float = 0.02, window: int = 10) -> float:
    """The number of steps after which the net fits its training data: the first logged step at
    which the mean training error (of the batches) over the last ``window`` logged steps is at most
    ``fit``, plus one; NaN when it never is. G6's measure of ease: among nets that all fit, the ones
    that fit sooner train more easily."""
    if "err" not in history or history.err.isna().all():
        return math.nan
    h = history.dropna(subset=["err"])
    hit = np.flatnonzero(h.err.rolling(window, min_periods=window).mean().to_numpy() <= fit)
    return float(h.step.iloc[hit[0]] + 1) if len(hit) else math.nan


def train_run(config: dict, train_set: TensorDataset, test_set: TensorDataset | None,
              device: torch.device | str | None = None) -> tuple[dict, None]:
    """Train one net of ``train_study`` from its config (``runs.run_grid``'s ``fn``), probing its
    per-layer gradients (``conv_grad_norms``, fp32) at initialisation, half-way
    (``probe["halfway"]``) and at the end; returns its row and its profiles by step, and no
    weights."""
    on, bar = runs.task_device(device, config)  # a Ray task: the config's device kind
    # the probe reads batches on the run's device
    train_set, test_set = fitting.on_device(on, train_set, test_set)
    probe_args = config["probe"]
    cfg = tr.TrainConfig.from_recipe(
        config["recipe"], desc=f"{config['family']} s{config['seed']} lr{config['lr']:g}",
        progress=bar)
    total = total_steps(len(train_set), cfg)
    marks = {0: "init", total // 2: "half-way", total: "end"} if probe_args["halfway"] else {
        0: "init", total: "end"}
    model = fitting.build(config).to(on)
    probe = ProbeDuringTraining(model, train_set, [s for s in marks if 0 < s < total],
                                probe_args["grad_batches"],
                                probe_args["probe_batch"], on)
    probe.profiles[0] = conv_grad_norms(model, train_set, probe_args["grad_batches"],
                                        probe_args["probe_batch"], on)
    f = fitting.fit(config, train_set, test_set, device, model=model, cfg=cfg, augment=probe)
    if not f.diverged:
        probe.profiles[total] = conv_grad_norms(model, train_set, probe_args["grad_batches"],
                                                probe_args["probe_batch"], on)
    row = {"family": config["family"], "seed": config["seed"], "lr": config["lr"], **f.outcome(),
           "steps": total, "steps_to_fit": steps_to_fit(f.result.history, cfg.converge_fit)}
    profiles = [{"step": s, "point": marks[s], "rows": p.to_dict("list")} for s,
                p in sorted(probe.profiles.items())]
    return {"row": row, "profiles": profiles}, None


@dataclass(frozen=True)
class ProbedTraining:
    """What ``train_study`` trains: every net of ``nets`` for every seed, at its best rate, probed
    as it trains.

    Attributes:
        nets: name -> ``(factory name, arguments)`` of a net (``net_spec``, ``sweep_nets``), built
        by ``models.create``
            after ``train.seed_everything(seed)``, with the training set's ``num_classes`` and
            ``in_channels``.
        seeds: the compared seeds. lrs: the rate grid each net's rate is chosen from. grad_batches,
        probe_batch: each probe's batches, and their size (``conv_grad_norms``). halfway: probe
        half-way too, not only at initialisation and at the end. lr_choice: ``"held-out"``,
        ``"each"`` or ``"first"`` (``train_study``).
    """

    nets: Mapping[str, tuple[str, dict]]
    seeds: Sequence[int]
    lrs: Sequence[float]
    grad_batches: int = 2
    probe_batch: int = 64
    halfway: bool = True
    lr_choice: str = "held-out"

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> ProbedTraining:
        """G1 and G4's nets: plain, residual and dense, with batch norm, at ``train_depth``; probed
        half-way too."""
        nets = {f: net_spec(f, p["train_depth"]) for f in ("plain", "residual", "dense")}
        return cls(nets, _seeds(p), p["lrs"], p["grad_batches"], p["batch_size"], True,
                   p["lr_choice"])

    @classmethod
    def sweep_from_params(cls, p: Mapping[str, Any]) -> ProbedTraining:
        """G6's connectivity sweep (``sweep_nets``), probed at initialisation and at the end."""
        nets = sweep_nets(p["sweep_layers"], p["sweep_every"])
        return cls(nets, _seeds(p), p["lrs"], p["grad_batches"], p["batch_size"], False,
                   p["lr_choice"])

    def arms(self, data: TensorDataset) -> dict[str, tuple[str, dict]]:
        """``nets`` with ``data``'s number of classes and of input channels."""
        shape = {"num_classes": int(data.tensors[1].max()) + 1,
                 "in_channels": data.tensors[0].shape[1]}
        return {n: (name, {**args, **shape}) for n, (name, args) in self.nets.items()}


def _seeds(p: Mapping[str, Any]) -> list[int]:
    return list(range(p["seed"], p["seed"] + p["seeds"]))


def train_study(design: ProbedTraining, setting: Setting) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every net of ``design`` for every seed, each at its best learning rate, probing
    gradients as it trains.

    The best rate is the one of ``design.lrs`` with the lowest final training error (diverged runs
    last, ties to the smaller rate; ``selection.best_rate``); one rate tuned for one architecture is
    no fair test of another. With ``lr_choice="held-out"`` (the default) a selection seed outside
    the sample (``selection.selection_seed``) is trained at every rate and decides for every
    compared seed, so no compared run is the one the rate was tuned on; with ``"each"`` every seed
    is trained at every rate and keeps its own best run (best of k: biased low, alike for every
    arm); with ``"first"`` the first compared seed decides for the others. Each kept run's per-layer
    gradients (``conv_grad_norms`` on the training set's first ``grad_batches`` batches of
    ``probe_batch``) are measured at initialisation (``step`` 0), half-way (when ``halfway``) and at
    the end. The runs train on ``setting.train`` with ``setting.cfg`` and are scored on
    ``setting.test`` (None: not scored); they go through ``runs.run_grid`` (``train_run``): with a
    ``runs.RunStore`` as ``setting.store``, finished runs load instead of training again.

    Returns:
        ``(runs, profiles)``: one row per run tried (name as ``family``, seed, lr, kept, diverged,
        converged, late_share, train_err, test_err, steps) and the kept runs' profiles (family,
        seed, step, ``point`` in init/half-way/end).
    """
    seeds, lrs, lr_choice = design.seeds, design.lrs, design.lr_choice
    train_set, test_set, device, store = setting.train, setting.test, setting.device, setting.store
    if lr_choice not in LR_CHOICES:
        raise ValueError(
            f"lr_choice={lr_choice!r} is not allowed; choose one of {', '.join(LR_CHOICES)}")
    ids = [keys.tensor_fingerprint(*d.tensors[:2]) if d is not None else None
           for d in (train_set, test_set)]
    recipe = setting.cfg.recipe()
    probe = {"grad_batches": design.grad_batches, "probe_batch": design.probe_batch,
             "halfway": design.halfway}
    nets = design.arms(train_set)

    def ask(todo, desc):  # (name, seed, lr) -> the run's result, loaded or trained
        configs = [{"name": nets[n][0], "study": "gradients", "family": n, "seed": s, "lr": lr,
                    "model_args": nets[n][1], "recipe": {**recipe, "seed": s, "lr": lr},
                    "probe": probe,
                    "train_data": ids[0], "test_data": ids[1], "device": torch.device(device).type}
                   for n, s, lr in todo]
        return dict(zip(todo, (
            r["result"] for r in runs.run_grid(configs, train_run, (train_set, test_set), store,
                                                                   device, desc))))

    def best(name, seed, rates):
        return best_rate((lr, done[(name, seed, lr)]["row"]["diverged"],
                          done[(name, seed, lr)]["row"]["train_err"])
                         for lr in rates)

    pick = selection_seed(seeds)
    first = list(seeds) if lr_choice == "each" else [seeds[0]] if lr_choice == "first" else [pick]
    if len(lrs) == 1:
        first = []  # one rate: nothing to choose
    done = ask([(n, s, lr) for n in nets for s in first for lr in lrs], f"{'/'.join(nets)}: rates")
    rate = {n: best(n, first[0], lrs) if first else lrs[0] for n in nets}
    done.update(ask([(n, s, rate[n]) for n in nets for s in seeds if s not in first],
                    f"{'/'.join(nets)}: seeds"))
    rows, profiles = [], []
    for n in nets:
        if pick in first:
            rows += [{**done[(n, pick, lr)]["row"], "kept": False, "role": "selection"}
                     for lr in lrs]
        for s in seeds:
            tried = list(lrs) if s in first else [rate[n]]
            kept = best(n, s, tried)
            for lr in tried:
                rows.append({**done[(n, s, lr)]["row"], "kept": lr == kept, "role": "sample"})
            profiles += [
                pd.DataFrame(p["rows"]).assign(family=n, seed=s, step=p["step"], point=p["point"])
                         for p in done[(n, s, kept)]["profiles"]]
    return pd.DataFrame(rows), pd.concat(profiles, ignore_index=True)


def sweep_nets(n_layers: int, every: Sequence[int], width: int = 16, growth: int = 8,
               num_classes: int = 10,
               in_channels: int = 3) -> dict[str, tuple[str, dict]]:
    """The connectivity sweep, from plain to dense, as ``(factory name, arguments)`` per
    configuration: a chain of ``n_layers`` conv-BN-ReLU layers with a shortcut every ``s`` layers
    for each ``s`` in ``every`` (0: none), then a dense block of ``n_layers`` layers."""
    out = {(f"every {e}" if e else "plain"): (f"chain-{n_layers}", {"width": width, "every": e,
                                                                   "num_classes": num_classes,
                                                                   "in_channels": in_channels})
           for e in every}
    out["dense"] = (f"dense-stage-{n_layers}", {"growth": growth, "num_classes": num_classes,
                                                "in_channels": in_channels})
    return out


# --- shattering -----------------------------------------------------------------------------------


def shattering_study(families: Iterable[str], depths: Iterable[int], seeds: Iterable[int],
                     data: TensorDataset,
                     n_points: int = 128) -> pd.DataFrame:
    """Neighbour gradient correlation (``neighbour_correlation``) of nets without batch norm at
    initialisation.

    A family named ``<family>-bn`` (e.g. ``residual-bn``) is built with batch norm and probed with
    the batch statistics of the line's points (``line_gradients(batch_stats=True)``): Balduzzi et
    al.'s batch-normed ResNet, whose correlation they find to decay sublinearly (about
    1/sqrt(depth)). Seed ``s`` picks the line (through the midpoint of two training images drawn by
    ``s``, spanning both), the random read-out of the logits and every net's initialisation, so the
    families are paired by seed. Runs on the CPU in fp32. Returns one row per family, depth and
    seed.
    """
    families, depths = list(families), list(depths)
    num_classes, in_ch = int(data.tensors[1].max()) + 1, data.tensors[0].shape[1]
    x_all = data.tensors[0].cpu().float()
    rows = []
    for s in seeds:
        i, j = random.Random(s).sample(range(len(x_all)), 2)
        x0, x1 = x_all[i], x_all[j]
        for fam in families:
            for depth in depths:
                kind, _, norm = fam.partition("-")
                tr.seed_everything(s)
                m = create(cifar_name(kind, depth), bn=norm == "bn", num_classes=num_classes,
                           in_channels=in_ch)
                c = neighbour_correlation(
                    line_gradients(m, (x0 + x1) / 2, (x1 - x0) / 2, n_points, seed=s,
                                                         batch_stats=norm == "bn"))
                rows.append({"family": fam, "depth": depth, "seed": s, "correlation": c})
    return pd.DataFrame(rows)


def _table_run(config: dict, data: TensorDataset,
               device: torch.device | str | None = None) -> tuple[dict, None]:
    """One table of measurements at initialisation from its config (``runs.run_grid``'s ``fn``):
    ``init_profiles`` or ``shattering_study`` with the config's arguments, as columns of lists."""
    device, _ = runs.task_device(device, config)
    fn = MEASURED_AT_INIT[config["name"]]
    extra = {"device": device} if config["name"] == "init_profiles" else {}
    return fn(data=data, **config["args"], **extra).to_dict("list"), None


MEASURED_AT_INIT = {"init_profiles": init_profiles, "shattering_study": shattering_study}


@dataclass(frozen=True)
class InitProfiles:
    """G1 and G2's nets at initialisation (``init_profiles``): ``families`` at ``depths``, with
    batch norm and without (``bns``), one net per seed, probed on ``grad_batches`` batches of
    ``batch_size``."""

    measure: ClassVar[str] = "init_profiles"
    families: Sequence[str]
    depths: Sequence[int]
    seeds: Sequence[int]
    bns: Sequence[bool] = (True, False)
    grad_batches: int = 2
    batch_size: int = 64

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> InitProfiles:
        """Plain and residual nets at ``depths``, with and without batch norm."""
        return cls(["plain", "residual"], p["depths"], _seeds(p), [True, False], p["grad_batches"],
                   p["batch_size"])


@dataclass(frozen=True)
class Shattering:
    """G3's nets at initialisation (``shattering_study``): ``families`` at ``depths``, one line per
    seed, of ``n_points`` points."""

    measure: ClassVar[str] = "shattering_study"
    families: Sequence[str]
    depths: Sequence[int]
    seeds: Sequence[int]
    n_points: int = 128

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> Shattering:
        """Plain and residual nets at ``shatter_depths``, without batch norm and with it
        (``-bn``)."""
        families = ["plain", "residual", "plain-bn", "residual-bn"]
        return cls(families, p["shatter_depths"], _seeds(p), p["shatter_points"])


def measured(design: InitProfiles | Shattering, setting: Setting) -> pd.DataFrame:
    """``init_profiles`` or ``shattering_study`` (``design.measure``) of ``design`` on
    ``setting.train`` (with the setting's device and store), measured once: a run of
    ``runs.run_grid`` keyed by the design, the data and the measuring function's source, so with a
    ``runs.RunStore`` re-executing notebook 02 loads the table."""
    name, data, device, store = design.measure, setting.train, setting.device, setting.store
    args = {k: list(v) if isinstance(v, (tuple, range)) else v for k, v in asdict(design).items()}
    config = {"name": name, "study": "gradients-at-init", "args": args,
              "data": keys.tensor_fingerprint(*data.tensors[:2]),
              # shattering: CPU, fp32
              "device": torch.device(device).type if name == "init_profiles" else "cpu"}
    code = keys.code_fingerprint() + keys.fn_fingerprint(MEASURED_AT_INIT[name], "")
    record = runs.run_grid([config], _table_run, (data,), store, device, f"02: {name}",
                           code=code)[0]
    return pd.DataFrame(record["result"])
