"""One run skeleton for every study: the run's device, its seed, the net, the training loop, the
wall time.

Each study's run function (``runs.run_grid``'s ``fn``: ``studies.degradation.train_run``,
``studies.gradient_flow.train_run``, ...) calls ``fit`` and adds only what is its own: a probe
before or after training and the identity fields of its row. ``fit`` places the data on the run's
device (``runs.task_device``: the kernel's, or a Ray task's), seeds, builds the net by its factory
name (or takes the one the study built, or a builder called after seeding), trains it with the
config's recipe through ``train.train`` and returns a ``Fitted``: the trained net, the loop's
``TrainResult`` and the seconds it took, with the numbers every study reports (``Fitted.outcome``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from . import data, runs
from . import train as tr
from .models import create


@dataclass
class Fitted:
    """A trained run: the net (on its device), the training loop's result and the wall time of
    training."""

    model: nn.Module
    result: tr.TrainResult
    seconds: float

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def diverged(self) -> bool:
        return bool(self.result.diverged)

    @property
    def converged(self) -> bool:
        return self.result.converged

    def final(self, key: str) -> float:
        """A final whole-set number of the run (``train_err``, ``test_err``, ``train_loss``, ...),
        NaN if absent."""
        return self.result.final.get(key, math.nan)

    def outcome(self) -> dict[str, Any]:
        """The numbers every study's row reports: parameters, diverged, converged, the convergence
        record's late share, and the final training and test error."""
        return {"params": self.params, "diverged": self.diverged, "converged": self.converged,
                "late_share": self.result.convergence.get("late_share", math.nan),
                "train_err": self.final("train_err"), "test_err": self.final("test_err")}

    def state(self) -> dict[str, torch.Tensor]:
        """The trained weights on the CPU (what the run store keeps)."""
        return {k: v.cpu() for k, v in self.model.state_dict().items()}


def on_device(device: torch.device, *sets: TensorDataset | None) -> tuple:
    """The data sets moved onto ``device`` once (``data.to_device``; unchanged on the CPU; None
    stays None)."""
    if device.type == "cpu":
        return sets

    return tuple(None if d is None else data.to_device(d, device) for d in sets)


def seed_of(config: dict[str, Any]) -> int:
    """A run's seed: ``config["seed"]``, else its recipe's."""
    return int(config["seed"] if "seed" in config else config["recipe"]["seed"])


def build(config: dict[str, Any], make: Callable[[], nn.Module] | None = None) -> nn.Module:
    """The run's freshly initialised net: seed (``seed_of``), then ``make()`` or the factory's
    ``create(config["name"], **config["model_args"])``."""
    tr.seed_everything(seed_of(config))
    return make() if make is not None else create(config["name"], **config["model_args"])


def fit(config: dict[str, Any], train_set: TensorDataset, test_set: TensorDataset | None = None,
        device: torch.device | str | None = None, *, model: nn.Module | None = None,
        make: Callable[[], nn.Module] | None = None, cfg: tr.TrainConfig | None = None,
        desc: str = "",
        augment: Callable | None = None, loss_fn: Callable | None = None,
        err_fn: Callable | None = None) -> Fitted:
    """Train one run from its ``config``: the device (``runs.task_device``), the data on it, the net
    (``model`` as given, else ``build(config, make)``), the recipe (``cfg``, else
    ``config["recipe"]`` with ``desc`` on the progress bar) and ``train.train`` with ``augment``,
    ``loss_fn`` and ``err_fn`` (the loop's defaults where None: cross-entropy and classification
    error)."""
    device, bar = runs.task_device(device, config)
    train_set, test_set = on_device(device, train_set, test_set)
    if cfg is None:
        cfg = tr.TrainConfig.from_recipe(config["recipe"], desc=desc, progress=bar)
    if model is None:
        model = build(config, make)
    extra = {k: v for k, v in (("loss_fn", loss_fn), ("err_fn", err_fn)) if v is not None}
    t0 = time.perf_counter()
    result = tr.train(model, train_set, cfg, test_set, device, augment=augment, **extra)
    return Fitted(model, result, time.perf_counter() - t0)
