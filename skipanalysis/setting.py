"""What a study's training runs share, as one typed value: ``Setting``.

Every study of a notebook trains its runs on the same data, with the same recipe, on the same device
and against the same run store; a study function takes that as one ``Setting`` beside its own typed
design (``studies.<notebook>``'s ``Design``), instead of five positional arguments repeated in every
signature. A ``Setting`` changes nothing in a run's config: the run store keys runs by what they
train, not by how the arguments travelled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch.utils.data import TensorDataset

from .runs import RunStore
from .train import TrainConfig


@dataclass(frozen=True)
class Setting:
    """The data, recipe, device and run store that a study's runs share.

    Attributes:
        train: the training set. test: the held-out set the runs are scored on (None: not scored).
        cfg: the training recipe (``train.TrainConfig``); a study sets each run's seed, rate and
        length on a copy. device: where the runs train. store: the run store (None: nothing is kept,
        every run trains). val: a validation split for rate selection, where a study has one (08).
    """

    train: TensorDataset
    test: TensorDataset | None
    cfg: TrainConfig
    device: torch.device | str = "cpu"
    store: RunStore | None = None
    val: TensorDataset | None = None

    def but(self, **changes: Any) -> Setting:
        """A copy with ``changes`` (``dataclasses.replace``): ``setting.but(cfg=longer)``."""
        return replace(self, **changes)
