"""The degradation problem: depth studies, the identity construction, distance to identity, highway
gates.

He et al. 2016 (sections 1 and 4.2): a deeper plain net can end with a higher *training* error than
a shallower one, and identity shortcuts remove the gap. The construction argument (He et al. 2016,
section 1; seed text 002): a deep net built from a trained shallow one plus identity layers is at
least as good, so the deep plain net's failure is one of optimisation. Srivastava et al. 2015 for
the highway gates. The construction itself (D3) is ``degradation_construction``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import torch
from torch.utils.data import TensorDataset

from .. import data, fitting, keys, runs, stats
from .. import train as tr
from ..claims import Finding
from ..measure.identity import block_distances, error_rate, gate_openness, max_output_difference
from ..models import cifar_name, create
from ..models.resnet import CifarResNet
from ..rules import degradation as rules
from ..selection import best_rate, selection_seed
from ..setting import Setting

# He et al. 2016, Table 6: CIFAR-10 test error (%) of the residual nets (ResNet-110: best of 5
# runs).
PAPER_TABLE6 = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}


@dataclass(frozen=True)
class Prepared:
    """Notebook 01's data and recipe, as ``prepare`` builds them: ``train`` and ``test``, the sets;
    ``cfg``, the recipe at the grid's first rate; ``steps``, per run; ``augment``, the training
    augmentation (None: none); ``about``, the runs as a claim's evidence states them (data, seeds,
    steps, rates)."""

    train: TensorDataset
    test: TensorDataset
    cfg: tr.TrainConfig
    steps: int
    augment: Callable | None
    about: dict[str, Any]

    def setting(self, device: torch.device | str = "cpu",
                store: runs.RunStore | None = None) -> Setting:
        """The ``Setting`` of runs on these data with this recipe, on ``device``, against
        ``store``."""
        return Setting(self.train, self.test, self.cfg, device, store)


def prepare(p: Mapping[str, Any], device: torch.device | str = "cpu") -> Prepared:
    """Data, recipe and augmentation of notebook 01's depth study from its parameters ``p`` (01's
    own namespace, or ``ctx.parameters_of("01_degradation")`` in a notebook that reuses 01's nets):
    the one place they are built, so the runs' configs, and with them the run store's keys, agree
    wherever 01's nets are asked for."""

    train_set, test_set = data.load_classification(p["dataset"], p["n_train"], p["n_test"],
                                                   p["image_size"], p["seed"],
                                                   p["data_path"] or None)
    if torch.device(device).type != "cpu":
        train_set, test_set = data.to_device(train_set, device), data.to_device(test_set, device)
    steps = round(p["epochs"] * -(-len(train_set) // p["batch_size"]))
    cfg = tr.TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lrs"][0],
                         schedule=p["schedule"],
                         milestones=tuple(p["milestones"]), warmup_steps=p["warmup_steps"],
                         warmup_lr=p["warmup_lr"],
                         weight_decay=p["weight_decay"], nesterov=p["nesterov"],
                         eval_every=max(1, steps // p["eval_points"]), precision=p["precision"],
                         channels_last=train_set.tensors[0].dim() == 4)
    return Prepared(train_set, test_set, cfg, steps, _augmentation(p),
                    {"data": data.describe(train_set), "seeds": p["seeds"], "steps": steps,
                     "lrs": p["lrs"]})


def _augmentation(p: Mapping[str, Any]) -> Callable | None:
    return tr.random_crop_flip if p["augment"] else None


@dataclass(frozen=True)
class DepthRuns:
    """What ``depth_study`` trains: every kind of ``kinds`` ("plain", "residual", "highway") at
    every depth of ``depths`` (6n+2), each of ``seeds`` (seed ``i`` of one arm pairs with seed ``i``
    of another), each (kind, depth) at its best rate from the grid ``lrs`` (empty: the recipe's
    rate); ``width``, the multiplier on the stage widths; ``gate_bias``, the highway gates' initial
    bias; the recipe's warm-up only from depth ``warmup_min_depth``; ``augment``, the training
    augmentation passed to ``train.train`` (None: none). Sequences are kept as tuples."""

    kinds: tuple[str, ...]
    depths: tuple[int, ...]
    seeds: tuple[int, ...]
    lrs: tuple[float, ...] = ()
    width: int = 1
    gate_bias: float = -2.0
    warmup_min_depth: int = 0
    augment: Callable | None = None

    def __post_init__(self):
        for name in ("kinds", "depths", "seeds", "lrs"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> DepthRuns:
        """Notebook 01's plain and residual nets from its parameters ``p`` (as ``prepare`` takes
        them): every depth in order, ``p["seeds"]`` seeds from ``p["seed"]``, its rate grid, width,
        gate bias, warm-up and augmentation. It reads only keys of ``params.DEPTH_RUNS`` (tested):
        what 07 and 02 ask of 01 decides 01's runs."""
        return cls(("plain", "residual"), sorted(p["depths"]),
                   range(p["seed"], p["seed"] + p["seeds"]), p["lrs"],
                   p["width"], p["gate_bias"], p["warmup_min_depth"], _augmentation(p))

    def but(self, **changes: Any) -> DepthRuns:
        """A copy with ``changes``: ``nets.but(kinds=("highway",), depths=(56,))``."""
        return replace(self, **changes)


def depth_study(design: DepthRuns, setting: Setting) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Train every (kind, depth, seed) of ``design`` on ``setting``, each (kind, depth) at its best
    rate.

    With a grid ``lrs``, a selection seed outside the sample (``selection.selection_seed``) is
    trained at every rate and ``selection.best_rate`` (lowest final training error) picks the rate
    of that kind and depth; every compared seed then trains at that rate. One rate tuned for
    residual nets is no fair test of plain nets, and this gives each architecture its own without
    favouring the seed it was tuned on. Without ``lrs``, the recipe's rate (``setting.cfg.lr``) is
    used throughout. The recipe's warm-up applies only to depths >= ``warmup_min_depth`` (He et al.
    warm up ResNet-110 alone). Runs go through ``runs.run_grid`` (``EXECUTOR=local`` or ``ray``),
    the rates of the first seed as one grid and the other seeds as a second. With a run store
    (``setting.store``), each run is looked up by its config (factory name and arguments, seed,
    rate, recipe, data, device kind) and the training code's fingerprint: a finished run loads with
    its weights instead of training again.

    Returns:
        ``(history, final, models)``: per-step history with kind/depth/seed/lr columns of the kept
        runs; one row per kept run (kind, depth, seed, lr, diverged, params, train_err, test_err,
        converged, late_share; NaN errors for a diverged run; ``role`` "sample") plus the selection
        seed's runs (``kept=False``, ``role`` "selection"); and the kept trained models by ``(kind,
        depth, seed)``.
    """
    kinds, seeds, augment, device, store = (design.kinds, design.seeds, design.augment,
                                            setting.device, setting.store)
    grid = list(design.lrs) if design.lrs else [setting.cfg.lr]
    data_ids = data_fingerprints(setting.train, setting.test)

    def config(kind, depth, seed, lr):
        return run_config(kind, depth, seed, lr, setting.cfg, setting.train, data_ids,
                          width=design.width,
                          gate_bias=design.gate_bias, warmup_min_depth=design.warmup_min_depth,
                          augment=augment,
                          device=device)

    def ask(configs, desc):
        records = runs.run_grid(configs, train_run, (setting.train, setting.test, augment), store,
                                device, desc)
        return [(r["config"]["lr"], dict(r["result"]["row"]), r) for r in records]

    arms = [(kind, depth) for kind in kinds for depth in design.depths]
    pick = selection_seed(seeds) if len(grid) > 1 else None  # one rate: nothing to choose
    first = [] if pick is None else ask([config(k, d, pick, lr) for k, d in arms for lr in grid],
                                        f"{'/'.join(kinds)}: rates")
    best = {}
    for j, arm in enumerate(arms):
        tried = first[j * len(grid):(j + 1) * len(grid)]
        best[arm] = best_rate((t[0], t[1]["diverged"], t[1]["train_err"])
                              for t in tried) if tried else grid[0]
    rest = ask([config(k, d, s, best[(k, d)]) for k, d in arms for s in seeds],
               f"{'/'.join(kinds)}: seeds")
    finals, histories, models = [], [], {}
    order = {arm: j for j, arm in enumerate(arms)}
    for _, row, _ in sorted(first, key=lambda t: (order[(t[1]["kind"], t[1]["depth"])], t[0])):
        finals.append({**row, "kept": False, "role": "selection"})
    for lr, row, record in sorted(
        rest, key=lambda t: (order[(t[1]["kind"], t[1]["depth"])], t[1]["seed"])):
        finals.append({**row, "kept": True, "role": "sample"})
        histories.append(pd.DataFrame(record["result"]["history"]).assign(
            kind=row["kind"], depth=row["depth"], seed=row["seed"], lr=lr))
        models[(row["kind"], row["depth"], row["seed"])] = _model(record, store, device)
    return pd.concat(histories, ignore_index=True), pd.DataFrame(finals), models


def data_fingerprints(train_set: TensorDataset,
                      test_set: TensorDataset | None) -> tuple[str, str | None]:
    """The run store's fingerprints of a depth run's training and test sets (``run_config``'s
    ``data_ids``)."""
    return tuple(keys.tensor_fingerprint(*d.tensors[:2]) if d is not None else None  # type: ignore[return-value]
                 for d in (train_set, test_set))


def run_config(kind: str, depth: int, seed: int, lr: float, cfg: tr.TrainConfig,
               train_set: TensorDataset,
               data_ids: tuple[str, str | None], width: int = 1, gate_bias: float = -2.0,
               warmup_min_depth: int = 0,
               augment=None, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The config of one depth run (``train_run``'s spec, the run store's key): the net by its
    factory name and arguments, the recipe at this seed and rate (warm-up only from
    ``warmup_min_depth``), the data by fingerprint."""
    run_cfg = replace(cfg, seed=seed, lr=lr, warmup_steps=0 if depth < warmup_min_depth
                      else cfg.warmup_steps)
    return {"name": cifar_name(kind, depth), "study": "depth", "kind": kind, "depth": depth,
            "seed": seed,
            "lr": lr,
            "model_args": {"num_classes": int(train_set.tensors[1].max()) + 1, "width": width,
                                     "in_channels": train_set.tensors[0].shape[1],
                                     **({"gate_bias": gate_bias} if kind == "highway" else {})},
            "recipe": run_cfg.recipe(),
            "train_data": data_ids[0], "test_data": data_ids[1],
            "augment": getattr(augment, "__name__", None),
            "device": torch.device(device).type}


def _model(record: dict, store, device) -> CifarResNet:
    """The trained net of a run record: built by the factory, weights from memory (fresh) or the
    store."""
    cfg = record["config"]
    model = create(cfg["name"], **cfg["model_args"])
    state = runs.state_of(record, store)
    if state is not None:
        model.load_state_dict(state)
    return model.to(device)


def train_run(config: dict, train_set: TensorDataset, test_set: TensorDataset | None, augment=None,
              device: torch.device | str | None = None) -> tuple[dict, dict]:
    """Train one run of ``depth_study`` from its config (``runs.run_grid``'s ``fn``): seed, build
    the net by its factory name, train with the recipe (``fitting.fit``); returns ``({"row",
    "history"}, state_dict)``."""
    f = fitting.fit(config, train_set, test_set, device, augment=augment,
                    desc=f"{config['name']} s{config['seed']} lr{config['lr']:g}")
    row = {"kind": config["kind"], "depth": config["depth"], "seed": config["seed"],
           "lr": config["lr"],
           **f.outcome()}
    return {"row": row, "history": f.result.history.to_dict("list")}, f.state()


def parameter_table(depths: list[int],
                    kinds: tuple[str, ...] = ("plain", "residual", "highway")) -> pd.DataFrame:
    """Parameters of each kind at each depth (plain and residual nets of one depth have exactly the
    same)."""
    return pd.DataFrame(
        {k: [sum(p.numel() for p in create(cifar_name(k, d)).parameters()) for d in depths]
                         for k in kinds},
                        index=pd.Index(depths, name="depth"))


def summarize(final: pd.DataFrame) -> pd.DataFrame:
    """Per (kind, depth) of the kept runs: training error with its 95% interval within [0, 1], the
    kept rate, the mean test error and how many runs converged and diverged."""
    kept = final[final.kept] if "kept" in final else final
    out = stats.summarize(kept, ["kind", "depth"], "train_err", (0, 1))
    g = kept.groupby(["kind", "depth"])
    return out.assign(lr=g.lr.first().values, test_err_mean=g.test_err.mean().values,
                      converged=g.converged.sum().values, diverged=g.diverged.sum().values)


def fitted_depths(final: pd.DataFrame, kinds: Sequence[str] = ("plain", "residual")) -> list[int]:
    """The depths at which every kept run of every one of ``kinds`` converged, in order. Claims that
    compare architectures (G5's lesions, L1's landscapes) read the deepest of them: compared nets
    must fit or plateau, and a deeper plain net that does not fit is D1's phenomenon, not a net to
    compare."""
    kept = final[final.kept] if "kept" in final else final
    kept = kept[kept.kind.isin(list(kinds))]
    return sorted(int(d) for d, g in kept.groupby("depth")
                  if g.converged.all() and set(g.kind) == set(kinds))


def arms(final: pd.DataFrame) -> dict[tuple[str, int], pd.DataFrame]:
    """The kept runs of each (kind, depth), in seed order (seed ``i`` of one arm pairs with seed
    ``i`` of another)."""
    kept = final[final.kept] if "kept" in final else final
    return {key: g.sort_values("seed") for key, g in kept.groupby(["kind", "depth"])}


def longer_runs(design: DepthRuns, setting: Setting, final: pd.DataFrame,
                factor: float = 2.0) -> pd.DataFrame:
    """The persistence check of D1 (the deep plain nets) and D5 (the deep highway nets): each (kind,
    depth) of ``design``, its seeds trained again, from scratch, for ``factor`` times the budget of
    ``setting``'s recipe at the rate the arm kept in ``final``. One row per run, as
    ``depth_study``'s. D3's from-scratch arm is the plain run when its budget is the same
    (``construct_epochs`` equal to ``epochs``): the run store trains it once."""
    kept, longer = arms(final), setting.but(
        cfg=replace(setting.cfg, epochs=factor * setting.cfg.epochs))
    rows = pd.concat([depth_study(
        design.but(kinds=(k,), depths=(d,), lrs=(float(kept[(k, d)].lr.iloc[0]),)), longer)[1]
                      for k in design.kinds for d in design.depths])
    return rows[rows.kept]


def depth_claims(final: pd.DataFrame, shallow: int, deep: int, chance: float, margin: float,
                 longer: pd.DataFrame | None = None, longer_highway: pd.DataFrame | None = None
                 ) -> dict[str, Finding]:
    """D1, D2 and (when highway nets ran) D5 from the kept runs, a ``Finding`` each by claim ID.
    ``longer`` and ``longer_highway``: the deep plain and highway nets at twice the budget
    (``longer_runs``), which D1 needs and D5 reads when a highway net did not converge.

    Convergence per kind of claim: the deep plain net's failure to fit is the phenomenon, so no
    claim requires it to converge; D1 requires the shallow plain net and the residual nets of every
    depth (the same recipe fits them), D2 the residual nets of every depth, D5 the deep residual net
    and, unless the highway runs at twice the budget decide whether an unconverged highway net is
    slow or degraded, the highway nets."""
    arm = arms(final)
    err = {k: g.train_err.tolist() for k, g in arm.items()}
    conv = lambda *keys: [c for k in keys for c in arm[k].converged]  # noqa: E731
    mean = lambda key: stats.rate_interval(err[key]).estimate  # noqa: E731
    p, r, h = ("plain", deep), ("residual", deep), ("highway", deep)
    residuals = [k for k in arm if k[0] == "residual"]
    twice = None if longer is None else longer.sort_values("seed").train_err.tolist()
    d1 = rules.d1(err[("plain", shallow)], err[p], twice, margin, chance,
                  conv(("plain", shallow), *residuals))
    # the deep plain net's error at its longest
    last = stats.rate_interval(twice).estimate if twice else mean(p)
    longest = f"; at twice the budget {last:.1%}" if twice else "; not run at twice the budget"
    stuck = (
        f"; plain-{deep} never left chance ({chance:.0%}), so these runs show a net that does not "
        "train, not the degradation He et al. describe" if last >= 0.9 * chance else "")
    out = {"D1": Finding(
        d1, f"plain-{deep} ends at {mean(p):.1%} training error vs {mean(('plain', shallow)):.1%} "
                             f"for plain-{shallow}{longest}{stuck}"),
           "D2": Finding(
               rules.d2(err[("residual", shallow)], err[r], err[p], margin, conv(*residuals)),
                         f"residual-{deep} ends at {mean(r):.1%} training error "
                         f"(residual-{shallow}: {mean(('residual', shallow)):.1%}, plain-{deep}: "
                         f"{mean(p):.1%})")}
    if h in err:
        twice_h = None if longer_highway is None else longer_highway.sort_values(
            "seed").train_err.tolist()
        d5 = rules.d5(err[p], err[h], err[r], margin, conv(r), conv(h), twice_h,
                      err[("plain", shallow)])
        at_twice = (f"; at twice the budget {stats.rate_interval(twice_h).estimate:.1%}" if twice_h
                    else "")
        out["D5"] = Finding(d5,
                            f"highway-{deep} ends at {mean(h):.1%} training error (plain "
                            f"{mean(p):.1%}, residual {mean(r):.1%}){at_twice}")
    return out


def with_gates(d5: Finding, gates: pd.DataFrame) -> Finding:
    """D5's finding with the trained highway nets' mean transform-gate value (``gate_openness``)
    added."""
    mean_gate = float(gates.gate_mean.mean())
    return replace(d5, headline=f"{d5.headline}; its gates average T = {mean_gate:.2f}",
                   evidence={**d5.evidence, "mean_gate": mean_gate})


def distance_study(models: dict, deep: int, probe: torch.Tensor, seed: int) -> dict:
    """D4: per block of the trained deep plain and residual nets of ``seed``, and of the same nets
    freshly initialised (seeded alike), the distances of ``block_distances``; their medians and
    ``rules.d4``'s decision.

    Returns:
        ``{"blocks", "medians", "finding"}``: the distances per block, their medians and D4's
        ``Finding``.
    """
    tr.seed_everything(seed)
    fresh = {k: create(cifar_name(k, deep)) for k in ("plain", "residual")}
    trained = {k: models[(k, deep, seed)].cpu() for k in fresh}
    dist = pd.concat([block_distances(m, probe.cpu()).assign(kind=k, state=state)
                      for state, nets in (("trained", trained), ("initial", fresh)) for k,
                      m in nets.items()])
    med = dist.groupby(["kind", "state"])[["corr_identity", "to_identity", "to_zero", "w_to_dirac",
                                            "w_norm_rel"]].median()
    d = rules.d4(med.loc[("plain", "trained"), "corr_identity"],
                 med.loc[("plain", "initial"), "corr_identity"],
                 med.loc[("residual", "trained"), "corr_identity"],
                 med.loc[("plain", "trained"), "to_identity"])
    return {"blocks": dist, "medians": med,
            "finding": Finding(d, "median correlation of a block's output with its input: plain "
                                  f"{d.numbers['plain_trained']:.2f} trained vs "
                                  f"{d.numbers['plain_init']:.2f} at initialisation; residual "
                                  f"{d.numbers['residual_trained']:.2f} (1 is the identity's "
                                  "direction)")}


__all__ = ["PAPER_TABLE6", "test_error_table", "with_gates", "depth_study", "block_distances",
           "gate_openness",
           "error_rate", "max_output_difference", "parameter_table", "summarize", "arms",
           "depth_claims",
           "distance_study"]


def test_error_table(grid: pd.DataFrame, dataset: str, n_train: int) -> pd.DataFrame:
    """The residual nets' test error by depth (mean and 95% interval over seeds, in %) beside He et
    al.'s Table 6, which applies only to the full CIFAR-10 training set."""
    res = summarize(grid.assign(train_err=grid.test_err))  # the same summary, of test error
    res = res[res.kind == "residual"].set_index("depth")
    paper = dataset == "cifar10" and not n_train
    return pd.DataFrame({"test error % (ours, mean)": 100 * res["mean"],
                         "95% interval": [f"[{100 * lo:.2f}, {100 * hi:.2f}]"
                                          for lo, hi in zip(res.ci_low, res.ci_high)],
                         "He et al. Table 6 %": [PAPER_TABLE6.get(d) if paper else None
                                                 for d in res.index]})
