"""Accuracy per parameter: small DenseNet-BC vs ResNet, data scarcity, and CSP / SE hybrids.

Huang et al. 2017 report that DenseNet-BC matches ResNet accuracy with about
a third of the parameters and overfits less; seed text 000 adds that partial
dense blocks (CSPNet, Wang et al. 2020) and squeeze-and-excitation (Hu et al.
2018) improve the accuracy-cost trade-off. Every model here is trained with
the same recipe and the same number of optimisation steps, whatever the size
of its training set.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset

from . import train as tr
from .models.densenet import DenseNetBC
from .models.resnet import cifar_resnet

_SPEC = re.compile(r"^(resnet|se-resnet|densenet|csp-densenet)-(\d+)$")


def build_model(spec: str, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """A model from a short spec: ``resnet-20``, ``se-resnet-20`` (depth), ``densenet-4``, ``csp-densenet-4``
    (dense layers per block, growth 12)."""
    m = _SPEC.match(spec)
    if not m:
        raise ValueError(f"model spec {spec!r} is not allowed; use resnet-D, se-resnet-D (D = 6n+2), densenet-N or "
                         "csp-densenet-N (N dense layers per block)")
    family, n = m.group(1), int(m.group(2))
    if family in ("resnet", "se-resnet"):
        return cifar_resnet(n, "residual" if family == "resnet" else "se-residual", num_classes=num_classes,
                            in_channels=in_channels)
    return DenseNetBC(n, 12, num_classes, in_channels, partial=family == "csp-densenet")


def family(spec: str) -> str:
    return spec.rsplit("-", 1)[0]


def subsample(data: TensorDataset, n: int, seed: int) -> TensorDataset:
    """The first ``n`` examples after a seeded shuffle (class balance is left to chance, as in practice)."""
    x, y = data.tensors
    if n > len(x):
        raise ValueError(f"training-set size {n} exceeds the {len(x)} examples available")
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return TensorDataset(x[idx], y[idx])


def run_grid(specs: list[str], sizes: list[int], seeds: list[int], train_set: TensorDataset, test_set: TensorDataset,
             cfg: tr.TrainConfig, steps: int, device: torch.device | str = "cpu") -> pd.DataFrame:
    """Train every (model, training-set size, seed) for ``steps`` steps; one row of results per run."""
    num_classes = int(train_set.tensors[1].max()) + 1
    in_ch = train_set.tensors[0].shape[1]
    rows = []
    for spec in specs:
        for n in sizes:
            for seed in seeds:
                data = subsample(train_set, n, seed)
                per_epoch = -(-n // cfg.batch_size)
                tr.seed_everything(seed)
                model = build_model(spec, num_classes, in_ch)
                res = tr.train(model, data, replace(cfg, epochs=steps / per_epoch, seed=seed, desc=f"{spec} n={n}"),
                               test_set, device)
                rows.append({"model": spec, "family": family(spec), "params": sum(p.numel() for p in model.parameters()),
                             "n_train": n, "seed": seed, "diverged": res.diverged,
                             "train_err": res.final.get("train_err", float("nan")),
                             "test_err": res.final.get("test_err", float("nan"))})
    df = pd.DataFrame(rows)
    df["gap"] = df.test_err - df.train_err
    return df
