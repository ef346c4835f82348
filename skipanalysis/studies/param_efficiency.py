"""Accuracy per parameter: small DenseNet-BC vs ResNet, data scarcity, and CSP / SE hybrids.

Huang et al. 2017 report that DenseNet-BC matches ResNet accuracy with about
a third of the parameters and overfits less; seed text 000 adds that partial
dense blocks (CSPNet, Wang et al. 2020) and squeeze-and-excitation (Hu et al.
2018) improve the accuracy-cost trade-off. Every model here is trained with
the same recipe and the same number of optimisation steps, whatever the size
of its training set; each model at its own learning rate from a small grid,
chosen on the first seeds by the error on a validation split held out from the
training pool (never the test set). Seed ``s`` of every model shares the data
subset and the batch order, so comparisons are paired over seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset

from .. import data as dt
from .. import fitting, keys, runs
from .. import train as tr
from ..claims import Finding
from ..measure.flops import fvcore_flops
from ..measure.timing import interleaved_times, paired_ratio, step_fn
from ..models import create
from ..params import MODEL_SPEC
from ..rules import param_efficiency as rules
from ..setting import Setting


def build_model(spec: str, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """A model of notebook 08 by its factory name (``resnet-D``, ``se-resnet-D``,
    ``bottleneck-resnet-D``, ``densenet-N``, ``csp-densenet-N``; growth 12): ``models.create`` with
    the data's classes and channels."""
    if not MODEL_SPEC.match(spec):
        raise ValueError(f"model spec {spec!r} is not allowed; use resnet-D, se-resnet-D (D = "
                         "6n+2), bottleneck-resnet-D (D = 9n+2), densenet-N or csp-densenet-N (N "
                         "dense layers per block)")
    return create(spec, num_classes=num_classes, in_channels=in_channels)


def family(spec: str) -> str:
    return spec.rsplit("-", 1)[0]


def subsample(data: TensorDataset, n: int, seed: int) -> TensorDataset:
    """``n`` examples drawn class-balanced at random by ``seed`` (class counts differ by at most
    one)."""
    x, y = data.tensors[:2]
    if n > len(x):
        raise ValueError(f"training-set size {n} exceeds the {len(x)} examples available")
    idx = dt.balanced_take(y.cpu(), n, torch.Generator().manual_seed(seed)).to(y.device)
    return TensorDataset(x[idx], y[idx])


# Training-batch augmentations by name (a run's config names one; none is the default and adds no
# key).
# C10+: He et al.'s pad-crop-flip, as Huang et al. trained DenseNets
AUGMENT = {"crop-flip": tr.random_crop_flip}


def run_config(spec: str, n_train: int | None, seed: int, lr: float, steps: int,
               cfg: tr.TrainConfig,
               data_ids: dict[str, str | None], validate: bool, device: torch.device | str = "cpu",
               augment: str | None = None) -> dict:
    """The config of one run of notebook 08 (``train_run`` trains it; the run store keys it): the
    model's factory name, the training-set size (``None``: the whole training set; else a
    class-balanced subset drawn by the seed), seed, rate, steps, recipe, the data's fingerprints,
    the device kind and, when set, the augmentation (a name in ``AUGMENT``)."""
    if augment is not None and augment not in AUGMENT:
        raise ValueError(
            f"augment={augment!r} is not allowed; choose one of {sorted(AUGMENT)} or None")
    # set per run below
    recipe = {k: v for k, v in cfg.recipe().items() if k not in ("epochs", "seed", "lr")}
    return {"name": spec, "study": "efficiency", "n_train": n_train, "seed": seed, "lr": lr,
            "steps": steps,
            "recipe": recipe, "validate": validate, **data_ids, "device": torch.device(device).type,
            **({"augment": augment} if augment else {})}


def train_run(config: dict, train_set: TensorDataset, val_set: TensorDataset | None,
              test_set: TensorDataset,
              device: torch.device | str | None = None) -> tuple[dict, None]:
    """Train one model of notebook 08 from its config for ``config["steps"]`` steps
    (``runs.run_grid``'s ``fn``); returns its row of results (errors on the training set, the test
    set and, with ``validate``, the validation set; convergence; parameters) and no weights."""
    on, _ = runs.task_device(device, config)  # a Ray task: the config's device kind
    train_set, val_set, test_set = fitting.on_device(on, train_set, val_set, test_set)
    spec, seed, lr = config["name"], config["seed"], config["lr"]
    data = train_set if config["n_train"] is None else subsample(train_set, config["n_train"], seed)
    val = val_set if config["validate"] else None
    cfg = tr.TrainConfig.from_recipe(config["recipe"])
    num_classes = int(data.tensors[1].max()) + 1
    per_epoch = -(-len(data) // cfg.batch_size)
    run_cfg = replace(cfg, epochs=config["steps"] / per_epoch, seed=seed, lr=lr, progress=False,
                      desc=f"{spec} n={len(data)} s{seed} lr{lr:g}")
    f = fitting.fit(config, data, None, device,  # the held-out sets are evaluated once, at the end
                    make=lambda: build_model(spec, num_classes, data.tensors[0].shape[1]),
                    cfg=run_cfg,
                    augment=AUGMENT[config["augment"]] if config.get("augment") else None)

    def err(d):
        return float("nan") if f.diverged else tr.evaluate(f.model, d, on,
                                                           precision=cfg.precision)["err"]

    row = {"model": spec, "family": family(spec), "n_train": len(data), "seed": seed, "lr": lr,
           **f.outcome(),
           "test_err": err(test_set)}
    if val is not None:
        row["val_err"] = err(val)
    return row, None


@dataclass(frozen=True)
class Design:
    """What notebook 08 trains: the models, the scarce sizes, the seeds, the rate grid and the
    steps.

    Attributes:
        specs: the models trained on the full training set, by factory name (``build_model``), each
        once. pair: the ResNet and the DenseNet of A1 and A2, in that order; they train on every
        scarce size too. small_sizes: the scarce training-set sizes (A2), each a class-balanced
        subset drawn by the seed. seeds: the seeds of every model and size, paired across models.
        lrs: the learning-rate grid each model's rate is chosen from (``choose_lrs``). steps:
        optimisation steps per run, the same for every size. lr_seeds: how many of the first
        ``seeds`` the rates are chosen on. control: the parameter-matched ResNet trained beside the
        pair on every size (None: none). augment: the training-batch augmentation by name (a key of
        ``AUGMENT``; None: none).
    """

    specs: list[str]
    pair: list[str]
    small_sizes: list[int]
    seeds: list[int]
    lrs: list[float]
    steps: int
    lr_seeds: int = 1
    control: str | None = None
    augment: str | None = None

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> Design:
        """The design from notebook 08's checked parameters: every model named in ``models``,
        ``pair`` and ``hybrids`` (hybrids and their bases), the seeds ``seed .. seed + seeds - 1``,
        and ``augment`` on as pad-crop-flip."""
        hybrids = p["hybrids"]
        return cls(specs=list(
            dict.fromkeys(p["models"] + p["pair"] + list(hybrids) + list(hybrids.values()))),
                   pair=list(p["pair"]), small_sizes=list(p["small_sizes"]),
                   seeds=list(range(p["seed"], p["seed"] + p["seeds"])), lrs=list(p["lrs"]),
                   steps=p["steps"],
                   lr_seeds=p["lr_seeds"], control=p["control"] or None,
                   augment="crop-flip" if p["augment"] else None)

    @property
    def trained(self) -> list[str]:
        """Every model trained on the full training set: ``specs`` and the control, each once."""
        return list(dict.fromkeys([*self.specs, *([self.control] if self.control else [])]))

    @property
    def scarce(self) -> list[str]:
        """The models trained on the scarce sizes: the pair and the control, each once."""
        return list(dict.fromkeys([*self.pair, *([self.control] if self.control else [])]))


def _rows(specs_seeds_lrs: list[tuple[str, int | None, int, float]], validate: bool, design: Design,
          setting: Setting, desc: str) -> list[dict]:
    """The rows of runs ``(spec, n_train, seed, lr)`` for ``design.steps`` steps with
    ``design.augment``: loaded from ``setting.store`` where finished, else trained."""
    s = setting
    ids = {f"{k}_data": keys.tensor_fingerprint(*d.tensors[:2]) if d is not None else None
           for k, d in (("train", s.train), ("val", s.val), ("test", s.test))}
    configs = [
        run_config(spec, n, seed, lr, design.steps, s.cfg, ids, validate, s.device, design.augment)
               for spec, n, seed, lr in specs_seeds_lrs]
    records = runs.run_grid(configs, train_run, (s.train, s.val, s.test), s.store, s.device, desc)
    return [dict(r["result"]) for r in records]


def choose_lrs(design: Design, setting: Setting) -> pd.DataFrame:
    """Train every model of ``design.trained`` at every rate of ``design.lrs`` on each of the first
    ``design.lr_seeds`` seeds and keep, per model, the smallest rate whose validation error (on
    ``setting.val``), averaged over those seeds, is within one binomial standard error of the best
    rate's (``sqrt(p (1 - p) / (n_val * lr_seeds))``; Breiman et al.'s one-standard-error rule).
    Rates a fraction of a point apart on validation are a tie, and a tie then goes to the gentler
    rate instead of to noise. A rate with a diverged run is never kept unless every rate diverged.
    Runs go through ``runs.run_grid``: with a ``runs.RunStore`` in ``setting.store``, finished runs
    load instead of training again.

    Returns:
        One row per (model, rate, seed) with ``val_err`` and ``kept``; kept rows are those seeds'
        runs.
    """
    seeds = design.seeds[:design.lr_seeds]
    todo = [(spec, None, seed, lr) for spec in design.trained for lr in sorted(design.lrs)
            for seed in seeds]
    df = pd.DataFrame(_rows(todo, True, design, setting, "08: rates"))
    df["val_mean"] = df.val_err.where(~df.diverged, np.inf).fillna(np.inf).groupby(
        [df.model, df.lr]).transform("mean")
    n = len(setting.val) * len(seeds)
    kept = {}
    for model, g in df.groupby("model"):
        best = g.val_mean.min()
        se = np.sqrt(best * (1 - best) / n) if np.isfinite(best) else 0.0
        kept[model] = g[g.val_mean <= best + se].lr.min() if np.isfinite(best) else g.lr.min()
    return df.assign(kept=df.lr == df.model.map(kept)).drop(columns="val_mean")


def study(design: Design, setting: Setting) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every model of ``design`` on the full training set, and the pair with its parameter-matched
    control ResNet (when given) on each scarce size, for every seed; ``design.augment`` names the
    training-batch augmentation (``AUGMENT``). The runs share ``setting``: its training set,
    validation split (``val``, for the rates), test set, recipe, device and run store.

    Each model's rate comes from ``choose_lrs`` on the first ``lr_seeds`` seeds (full training set);
    the pair and the control keep their rates on the scarce sizes. A scarce subset is drawn
    class-balanced by the seed, the same for every model. With a ``runs.RunStore``, finished runs
    load instead of training again.

    Returns:
        ``(runs, grid)``: one row per kept run (model, n_train, seed, lr, errors, ``gap`` = test -
        train error, converged); and the rate grid's rows.
    """
    grid = choose_lrs(design, setting)
    lr_of = grid[grid.kept].groupby("model").lr.first().to_dict()
    rows = grid[grid.kept].drop(columns=["kept", "val_err"]).to_dict("records")
    todo = [(spec, None, seed, lr_of[spec]) for seed in design.seeds[design.lr_seeds:]
            for spec in design.trained]
    todo += [(spec, n, seed, lr_of[spec]) for n in design.small_sizes for seed in design.seeds
             for spec in design.scarce]
    rows += _rows(todo, False, design, setting, "08: seeds and sizes")
    table = pd.DataFrame(rows).sort_values(["model", "n_train", "seed"], ignore_index=True)
    return table.assign(gap=table.test_err - table.train_err), grid


def per_seed(runs: pd.DataFrame, model: str, n_train: int, column: str) -> list[float]:
    """``column`` of ``model``'s runs at ``n_train`` training images, in seed order (the pairing
    key)."""
    sel = runs[(runs.model == model) & (runs.n_train == n_train)].sort_values("seed")
    if sel.empty:
        raise ValueError(f"no runs of {model} at n_train={n_train}")
    return sel[column].tolist()


def converged(runs: pd.DataFrame, models: list[str], n_train: int | None = None) -> list[bool]:
    """Convergence flags of the runs of ``models`` (at ``n_train`` when given)."""
    sel = runs[runs.model.isin(models)]
    return (sel if n_train is None else sel[sel.n_train == n_train]).converged.tolist()


# --- the claims: each helper returns (decision, headline) -----------------------------------------

def a1_claim(runs: pd.DataFrame, summ: pd.DataFrame, pair: list[str], control: str, n_train: int,
             margin: float):
    """A1 from the runs on the full training set and ``plot_error_vs_params``' summary (parameters
    per model): the pair and the parameter-matched ``control`` ResNet."""
    res_m, dense_m = pair
    ratio = summ.loc[dense_m, "params"] / summ.loc[res_m, "params"]
    c_ratio = summ.loc[control, "params"] / summ.loc[dense_m, "params"]
    err = lambda m: per_seed(runs, m, n_train, "test_err")  # noqa: E731
    d = rules.a1(err(res_m), err(dense_m), err(control), ratio, c_ratio, margin,
                 converged(runs, list(dict.fromkeys(pair + [control])), n_train))
    ni, c = (d.numbers["noninferiority_densenet_vs_resnet"]["difference"],
             d.numbers["control_minus_densenet_err"])
    return Finding(d, f"{dense_m} ({ratio:.2f}x the parameters) reaches "
                      f"{summ.loc[dense_m, 'mean']:.1%} test error vs {res_m}'s "
                      f"{summ.loc[res_m, 'mean']:.1%}; paired difference {ni['estimate']:+.1%} "
                      f"(upper 95% bound {ni['high']:+.1%}, margin {margin:.0%}); the control "
                      f"{control} ({c_ratio:.2f}x {dense_m}'s parameters) "
                      f"{summ.loc[control, 'mean']:.1%}, {c['estimate']:+.1%} [{c['low']:+.1%}, "
                      f"{c['high']:+.1%}] above {dense_m}")


def a2_claim(runs: pd.DataFrame, pair: list[str], control: str, n_scarce: int):
    """A2 from the runs of the pair and the parameter-matched ``control`` at the scarcest
    training-set size."""
    res_m, dense_m = pair
    col = lambda m, c: per_seed(runs, m, n_scarce, c)  # noqa: E731
    d = rules.a2(col(res_m, "train_err"), col(res_m, "test_err"), col(dense_m, "train_err"),
                 col(dense_m, "test_err"),
                 col(control, "train_err"), col(control, "test_err"),
                 converged(runs, list(dict.fromkeys(pair + [control])), n_scarce))
    gr, gd, gc, dg = (d.numbers[k] for k in ("resnet_gap", "densenet_gap", "control_gap",
                                             "resnet_minus_densenet_gap"))
    return Finding(d, f"with {n_scarce} training images the gap is {gd['estimate']:.1%} for "
                      f"{dense_m}, {gr['estimate']:.1%} for {res_m} (paired difference "
                      f"{dg['estimate']:+.1%} [{dg['low']:+.1%}, {dg['high']:+.1%}]) and "
                      f"{gc['estimate']:.1%} for the control {control}")


def model_costs(specs: list[str], image_size: int, batch_size: int,
                device: torch.device | str = "cpu",
                precision: str = "fp32", rounds: int = 5, num_classes: int = 10,
                min_run_time: float = 0.1
                ) -> pd.DataFrame:
    """A3's costs of each model: parameters, forward FLOPs of one image (fvcore's multiply-adds) and
    the time of one training step (forward and backward of a ``batch_size`` batch, bf16 autocast
    when ``precision`` is bf16) on ``device``, timed in ``rounds`` interleaved rounds
    (``measure.timing.interleaved_times``: rounds pair the models).

    Returns:
        One row per model (index): ``params``, ``flops``, ``step_s`` (median over rounds) and
        ``step_times`` (the rounds, in order).
    """
    device = torch.device(device)
    autocast = torch.bfloat16 if precision == "bf16" else None
    rows, steps = {}, {}
    for spec in specs:
        tr.seed_everything(0)
        model = build_model(spec, num_classes)
        x = torch.zeros(1, 3, image_size, image_size)
        rows[spec] = {"params": sum(p.numel() for p in model.parameters()),
                      "flops": fvcore_flops(model, x)["total"]}
        steps[spec] = step_fn(model, batch_size, image_size, device, True, autocast=autocast)
    times = interleaved_times(steps, device, rounds, min_run_time)
    out = pd.DataFrame.from_dict(rows, orient="index")
    out["step_s"] = [float(np.median(times[m])) for m in out.index]
    out["step_times"] = [times[m] for m in out.index]
    return out


def cost_ratios(costs: pd.DataFrame, hybrid: str, base: str) -> dict[str, float]:
    """Hybrid / base on each of A3's cost axes: parameters, FLOPs, and the training-step time as the
    median of the per-round ratios (``measure.timing.paired_ratio``: a round slowed for both models
    cancels)."""
    time_ratio, _, _ = paired_ratio(costs.loc[hybrid, "step_times"], costs.loc[base, "step_times"])
    return {"params": costs.loc[hybrid, "params"] / costs.loc[base, "params"],
            "flops": costs.loc[hybrid, "flops"] / costs.loc[base, "flops"],
            "time": float(time_ratio)}


def a3_claim(runs: pd.DataFrame, summ: pd.DataFrame, hybrids: dict[str, str], n_train: int,
             margin: float,
             costs: pd.DataFrame):
    """A3: each hybrid against its base on the full training set, with its costs (``model_costs``)
    as ratios."""
    err = lambda m: per_seed(runs, m, n_train, "test_err")  # noqa: E731
    arms = {h: {"hybrid_err": err(h), "base_err": err(b), "costs": cost_ratios(costs, h, b)} for h,
            b in hybrids.items()}
    d = rules.a3(arms, margin, converged(runs, list(hybrids) + list(hybrids.values()), n_train))

    def said(h: str, b: str) -> str:
        r, o = arms[h]["costs"], d.numbers["hybrids"][h]
        return (f"{h}: {summ.loc[h, 'mean']:.1%} error vs {b}'s {summ.loc[b, 'mean']:.1%} "
                f"({o['error']}) at {r['params']:.2f}x the parameters, {r['flops']:.2f}x the "
                f"FLOPs, {r['time']:.2f}x the step time: {o['outcome']}")
    return Finding(d, "; ".join(said(h, b) for h, b in hybrids.items()))


def cost_table(costs: pd.DataFrame, hybrids: dict[str, str]) -> pd.DataFrame:
    """The costs of each hybrid and its base, with the hybrid's ratios on each axis."""
    rows = []
    for h, b in hybrids.items():
        r = cost_ratios(costs, h, b)
        for m, ratio in ((b, None), (h, r)):
            rows.append({"model": m, "params": int(costs.loc[m, "params"]),
                         "MFLOPs": costs.loc[m, "flops"] / 1e6,
                         "step ms": 1e3 * costs.loc[m, "step_s"],
                         **({f"{k} ratio": v for k, v in ratio.items()} if ratio else {})})
    return pd.DataFrame(rows).set_index("model")
