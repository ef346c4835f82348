"""Notebook 02's G5: lesions and path lengths of trained nets (Veit et al. 2016, sections 4-6),
measured once through the run store; split from ``gradient_flow``, which holds the module's other
studies."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch.utils.data import TensorDataset

from .. import keys, runs
from ..measure.probes import path_gradients, random_lesions, single_lesions
from ..models.resnet import CifarResNet
from ..setting import Setting
from . import degradation as dg


def random_lesion_table(nets: dict[tuple[str, int], CifarResNet], seed: int, data: TensorDataset,
                        max_k: int = 6,
                        draws: int = 4, device="cpu") -> pd.DataFrame:
    """``random_lesions`` of each family's net of one seed, for k = 1 .. min(max_k, blocks), with a
    family column."""
    out = []
    for (fam, s), m in nets.items():
        if s == seed:
            ks = list(range(1, min(max_k, len(m.blocks)) + 1))
            out.append(random_lesions(m, data, ks, draws, seed, device).assign(family=fam))
    return pd.concat(out, ignore_index=True)


def lesion_study(models: dict[tuple[str, int], CifarResNet], data: TensorDataset, chance: float,
                 device="cpu") -> pd.DataFrame:
    """Single-block lesions of every trained model, with the damage each does.

    ``damage = (err_lesioned - err_intact) / (chance - err_intact)``: the share of the way from the
    intact net's test error to chance error that deleting the block goes (0: no harm, 1: the net is
    reduced to chance); NaN for a net whose intact error is already at or above chance.

    Returns:
        One row per ``(family, seed)`` and deleted block: family, seed, block (1-based), err,
        base_err, damage.
    """
    rows = []
    for (fam, seed), m in models.items():
        df = single_lesions(m, data, device)
        base = float(df.err.iloc[0])
        rows.append(df[df.block > 0].assign(family=fam, seed=seed, base_err=base,
                                            damage=lambda d, b=base: (
                                                (d.err - b) / (chance - b) if b < chance
                                                else math.nan)))
    return pd.concat(rows, ignore_index=True)


def path_study(models: dict[int, CifarResNet], data: TensorDataset, n_images: int = 64,
               samples: int = 4
               ) -> pd.DataFrame:
    """``path_gradients`` of each trained residual net (by seed) on the first ``n_images`` of
    ``data`` (CPU, fp32).

    Returns the per-length rows with a ``seed`` column; ``mean_path_lengths`` reduces them to one
    number per seed.
    """
    x, y = data.tensors[0][:n_images].cpu().float(), data.tensors[1][:n_images].cpu()
    return pd.concat([path_gradients(m.cpu(), x, y, samples, seed).assign(seed=seed) for seed,
                      m in models.items()],
                     ignore_index=True)


def g5_run(config: dict, nets: Mapping[tuple[str, int], CifarResNet], data: TensorDataset,
           device: torch.device | str | None = None) -> tuple[dict, None]:
    """G5's measurements from their config (``runs.run_grid``'s ``fn``): single-block lesions of
    every net (``lesion_study``), k random lesions of the first seed's nets
    (``random_lesion_table``) and the residual nets' gradient by path length (``path_study``); each
    table as columns of lists."""
    device, _ = runs.task_device(device, config)
    lesions = lesion_study(nets, data, config["chance"], device)
    multi = random_lesion_table(nets, config["first_seed"], data, max_k=config["max_k"],
                                draws=config["draws"],
                                device=device)
    residual = {s: m for (fam, s), m in sorted(nets.items()) if fam == "residual"}
    paths = path_study(residual, data, config["path_images"], config["path_samples"])
    return {name: t.to_dict("list") for name,
            t in (("lesions", lesions), ("multi", multi), ("paths", paths))}, None


@dataclass(frozen=True)
class Lesioning:
    """What G5 measures on trained nets (``g5_run``).

    Attributes:
        chance: the error of a guess, towards which a lesion's damage is measured
        (``lesion_study``). first_seed: the seed whose nets get k random lesions
        (``random_lesion_table``), k up to ``max_k``, ``draws``
            draws each.
        path_samples, path_images: random block choices per path length, on that many images
        (``path_study``).
    """

    chance: float
    first_seed: int
    path_samples: int
    max_k: int = 6
    draws: int = 4
    path_images: int = 64

    @classmethod
    def from_params(cls, p: Mapping[str, Any], chance: float, first_seed: int) -> Lesioning:
        """From notebook 02's ``path_samples``, with the chance error and first seed of the nets'
        own data and runs (notebook 01's: facts of those, not parameters of 02)."""
        return cls(chance, first_seed, p["path_samples"])


def g5_measurements(nets: Mapping[tuple[str, int], CifarResNet], design: Lesioning, setting: Setting
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(lesions, multi, paths)`` of ``g5_run`` on the images ``setting.test`` (with the setting's
    device and store; nothing else of it), measured once: a run of ``runs.run_grid`` keyed by the
    nets' weights, the images and the design, so with a ``runs.RunStore`` re-executing notebook 02
    loads them."""
    data, device, d = setting.test, setting.device, design
    config = {"name": "g5-lesions-and-paths", "study": "lesions",
              "nets": {f"{fam}/{s}": keys.tensor_fingerprint(*m.state_dict().values())
                       for (fam, s), m in sorted(nets.items())},
              "images": keys.tensor_fingerprint(*data.tensors[:2]), "chance": d.chance,
              "first_seed": d.first_seed,
              "max_k": d.max_k, "draws": d.draws, "path_images": d.path_images,
              "path_samples": d.path_samples,
              "device": torch.device(device).type}
    result = runs.run_grid([config], g5_run, (dict(nets), data), setting.store, device,
                           "02: G5 lesions and paths")[0]["result"]
    return tuple(pd.DataFrame(result[k]) for k in ("lesions", "multi", "paths"))


def lesion_nets(nets01: dg.DepthRuns,
                setting01: Setting) -> tuple[pd.DataFrame, dict[tuple[str, int], CifarResNet]]:
    """G5's nets: notebook 01's plain and residual nets, every seed, asked for with 01's parameters
    ``p01`` (``nets01 = DepthRuns.from_params(p01)`` on ``prepare(p01).setting(...)``), so with a
    run store they load instead of training; of the deepest of 01's depths at which every plain and
    residual run converged (compared nets must fit or plateau: a deeper plain net that does not fit
    is D1's phenomenon, and a lesion's damage, measured towards chance, says little of a net near
    chance); the deepest depth when there is none (G5 then reads inconclusive).

    Returns:
        ``(kept, nets)``: 01's kept runs at that depth (kind, seed, lr, train_err, converged, ...)
        and the nets by ``(family, seed)``, in eval mode.
    """
    _, grid, models = dg.depth_study(nets01, setting01)
    kept = grid[grid.kept]
    fit = dg.fitted_depths(kept)
    depth = fit[-1] if fit else max(nets01.depths)
    return kept[kept.depth == depth], {(k, s): m.eval() for (k, d, s), m in models.items()
                                       if d == depth}
