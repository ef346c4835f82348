"""One training loop for every notebook.

SGD (momentum) or Adam, a constant, step or cosine schedule with optional
linear warm-up, a seed that fixes initialisation and batch order, a tqdm
progress bar, and a history DataFrame. A run whose loss turns NaN/inf or
explodes is stopped and recorded as ``diverged``: a result, not a crash.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainConfig:
    epochs: float = 5  # may be fractional: training stops after round(epochs * batches per epoch) steps
    batch_size: int = 128
    optimizer: str = "sgd"  # "sgd" (momentum) or "adam"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # "constant", "cosine" or "step"
    milestones: tuple[float, ...] = (0.5, 0.75)  # step schedule: fractions of training where lr /= 10
    warmup_steps: int = 0  # warm-up steps: linear from lr/warmup_steps to lr, or constant warmup_lr if set
    warmup_lr: float | None = None  # He et al. 2016's ResNet-110 recipe: 0.01 for the first ~400 steps
    seed: int = 0
    eval_every: int = 0  # evaluate on the test set every N steps (0: once per epoch)
    diverge_factor: float = 10.0  # loss above this multiple of the first loss counts as diverged
    progress: bool = True
    desc: str = "train"

    def validate(self) -> None:
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer={self.optimizer!r} is not allowed; choose 'sgd' or 'adam'")
        if self.schedule not in ("constant", "cosine", "step"):
            raise ValueError(f"schedule={self.schedule!r} is not allowed; choose 'constant', 'cosine' or 'step'")
        if not self.epochs > 0:
            raise ValueError(f"epochs={self.epochs!r}: must be > 0")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size!r}: must be a positive integer")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr!r}: must be > 0")


@dataclass
class TrainResult:
    history: pd.DataFrame  # one row per step: step, epoch, lr, loss, err; test_err at evaluation steps
    diverged: bool
    final: dict = field(default_factory=dict)  # final train/test loss and error over the whole sets


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """The learning rate at ``step`` (0-based) of ``total``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.warmup_lr if cfg.warmup_lr is not None else cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "cosine":
        t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * t))
    if cfg.schedule == "step":
        return cfg.lr * 0.1 ** sum(step >= m * total for m in cfg.milestones)
    return cfg.lr


def classification_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of wrong arg-max predictions."""
    return (out.argmax(1) != y).float().mean()


@torch.no_grad()
def evaluate(model: nn.Module, data: TensorDataset, device: torch.device | str = "cpu", batch_size: int = 512,
             loss_fn: Callable = F.cross_entropy, err_fn: Callable = classification_error) -> dict[str, float]:
    """Mean loss and error of ``model`` on ``data`` (eval mode), averaged over examples."""
    was_training = model.training
    model.eval()
    loss, err, n = 0.0, 0.0, 0
    x_all, y_all = data.tensors[:2]
    for i in range(0, len(x_all), batch_size):
        x, y = x_all[i:i + batch_size].to(device), y_all[i:i + batch_size].to(device)
        out = model(x)
        loss += loss_fn(out, y).item() * len(y)
        err += err_fn(out, y).item() * len(y)
        n += len(y)
    model.train(was_training)
    return {"loss": loss / n, "err": err / n}


def batches(data: TensorDataset, batch_size: int, generator: torch.Generator):
    """Shuffled mini-batches of a ``TensorDataset`` by indexing its tensors where they live.

    The permutation comes from a CPU generator (same order on every device); a
    dataset already on the GPU never leaves it.
    """
    x, y = data.tensors[:2]
    order = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x), batch_size):
        idx = order[i:i + batch_size].to(x.device)
        yield x[idx], y[idx]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """He et al. 2016's CIFAR augmentation on a batch, on its own device: zero-pad, random crop, random flip."""
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(b, c, h, w)
    cols = ox[:, None] + torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :].expand(b, c, h, w)
    batch_idx = torch.arange(b, device=x.device)[:, None, None, None]
    chan_idx = torch.arange(c, device=x.device)[None, :, None, None]
    return xp[batch_idx, chan_idx, rows, cols]


def train(model: nn.Module, train_data: TensorDataset, cfg: TrainConfig, test_data: TensorDataset | None = None,
          device: torch.device | str = "cpu",
          augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
          loss_fn: Callable = F.cross_entropy, err_fn: Callable = classification_error) -> TrainResult:
    """Train ``model`` on ``train_data`` (cross-entropy classification unless told otherwise).

    ``augment(x, generator)``, when given, transforms each training batch
    (e.g. ``random_crop_flip``) on the batch's device. ``loss_fn(out, y)`` is
    minimised and ``err_fn(out, y)`` logged (e.g. 1 - Dice for segmentation).

    Returns:
        A ``TrainResult``; ``diverged`` is True when the loss became NaN/inf or
        exceeded ``diverge_factor`` times its first value (training stops there).
    """
    cfg.validate()
    seed_everything(cfg.seed)
    model.to(device).train()
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)
    per_epoch = math.ceil(len(train_data) / cfg.batch_size)
    total = max(1, round(cfg.epochs * per_epoch))
    eval_every = cfg.eval_every or per_epoch
    rows, diverged, first_loss, step = [], False, None, 0
    bar = tqdm(total=total, desc=cfg.desc, disable=not cfg.progress, leave=False)
    while step < total and not diverged:
        for x, y in batches(train_data, cfg.batch_size, g):
            lr = lr_at(step, total, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = x.to(device), y.to(device)
            if augment is not None:
                x = augment(x, g)
            out = model(x)
            loss = loss_fn(out, y)
            value = loss.item()
            first_loss = value if first_loss is None else first_loss
            row = {"step": step, "epoch": step / per_epoch, "lr": lr, "loss": value,
                   "err": err_fn(out.detach(), y).item()}
            if not math.isfinite(value) or value > cfg.diverge_factor * max(first_loss, 1e-8):
                diverged = True
                rows.append(row)
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if test_data is not None and (step % eval_every == 0 or step == total):
                row["test_err"] = evaluate(model, test_data, device, loss_fn=loss_fn, err_fn=err_fn)["err"]
            rows.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}")
            if step >= total:
                break
    bar.close()
    final = {}
    if not diverged:
        tr = evaluate(model, train_data, device, loss_fn=loss_fn, err_fn=err_fn)
        final = {"train_loss": tr["loss"], "train_err": tr["err"]}
        if test_data is not None:
            te = evaluate(model, test_data, device, loss_fn=loss_fn, err_fn=err_fn)
            final.update(test_loss=te["loss"], test_err=te["err"])
    return TrainResult(pd.DataFrame(rows), diverged, final)
