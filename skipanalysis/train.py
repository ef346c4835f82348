"""One training loop for every notebook.

SGD (momentum) or Adam, a constant, step, cosine or one-cycle schedule with
optional linear warm-up, a seed that fixes initialisation and batch order, a
tqdm progress bar, and a history DataFrame. A run whose loss turns NaN/inf or
explodes is stopped and recorded as ``diverged``: a result, not a crash.

Every run records whether it converged (``convergence``): whether its loss had
flattened while the learning rate was still high, or the net fits its training
data. (The flat tail of an annealed run proves nothing: the rate going to zero
stops the loss whether or not more steps would lower it.) A verdict resting on
an unconverged run reads inconclusive.

Speed: ``precision="bf16"`` runs forward and loss under bf16 autocast (about
1.8x on the 2-core development CPU for ResNet-20 at batch 128) and
``channels_last`` stores activations NHWC (faster for convolutions at 32 px on
CPUs). The loop syncs with the device once per logged step only; ``make bench``
compares it with a bare torch loop.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from .params import PRECISIONS, SCHEDULES


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)




@dataclass
class TrainConfig:
    # may be fractional: training stops after round(epochs * batches per epoch) steps
    epochs: float = 5
    batch_size: int = 128
    optimizer: str = "sgd"  # "sgd" (momentum) or "adam"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False  # Nesterov momentum (SGD only)
    weight_decay: float = 1e-4
    # "constant", "cosine", "step" or "onecycle" (linear up for 30%, cosine down)
    schedule: str = "cosine"
    # step schedule: fractions of training where lr /= 10
    milestones: tuple[float, ...] = (0.5, 0.75)
    # warm-up steps: linear from lr/warmup_steps to lr, or constant warmup_lr if set
    warmup_steps: int = 0
    # He et al. 2016's ResNet-110 recipe: 0.01 for the first ~400 steps
    warmup_lr: float | None = None
    seed: int = 0
    eval_every: int = 0  # evaluate on the test set every N steps (0: once per epoch)
    diverge_factor: float = 10.0  # loss above this multiple of the first loss counts as diverged
    # "fp32" or "bf16" (autocast for forward and loss; weights and optimiser stay fp32)
    precision: str = "fp32"
    channels_last: bool = False  # NHWC memory format for 4-D inputs and conv weights
    # convergence: the high-rate phase is cut in parts of this fraction ...
    converge_window: float = 0.2
    # ... converged when its last part brought less than this share of the phase's fall
    converge_tol: float = 0.05
    # ... or when the logged training error over the last 5% of steps is at most this
    converge_fit: float = 0.02
    # evaluate loss and error over the whole train (and test) set at the end
    final_eval: bool = True
    log_every: int = 1  # record loss and error every N steps (each record syncs with the device)
    progress: bool = True
    desc: str = "train"

    def recipe(self) -> dict:
        """The fields that decide a run's numbers (all but ``progress`` and ``desc``): a run
        config's recipe."""
        return {k: v for k, v in vars(self).items() if k not in ("progress", "desc")}

    @classmethod
    def from_recipe(cls, recipe: dict, **display) -> TrainConfig:
        """The config of a ``recipe`` read back from a run config (JSON lists become tuples), with
        ``display`` settings (``progress``, ``desc``)."""
        return cls(**{**recipe, "milestones": tuple(recipe["milestones"]), **display})

    def validate(self) -> None:
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer={self.optimizer!r} is not allowed; choose 'sgd' or 'adam'")
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule={self.schedule!r} is not allowed; choose one of {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision={self.precision!r} is not allowed; choose one of "
                f"{', '.join(PRECISIONS)}")
        if not self.epochs > 0:
            raise ValueError(f"epochs={self.epochs!r}: must be > 0")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size!r}: must be a positive integer")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr={self.lr!r}: must be a finite number > 0")
        if not 0 < self.converge_window <= 0.5:
            raise ValueError(f"converge_window={self.converge_window!r}: must be in (0, 0.5]")
        if not 0 < self.converge_tol < 1 or not 0 <= self.converge_fit <= 1:
            raise ValueError(
                f"converge_tol={self.converge_tol!r} must be in (0, 1) and converge_fit="
                             f"{self.converge_fit!r} in [0, 1]")
        if self.nesterov and not (self.optimizer == "sgd" and self.momentum > 0):
            raise ValueError(f"nesterov=True needs optimizer='sgd' with momentum > 0 (got "
                             f"optimizer={self.optimizer!r}, "
                             f"momentum={self.momentum!r})")
        if not isinstance(self.log_every, int) or self.log_every < 1:
            raise ValueError(f"log_every={self.log_every!r}: must be a positive integer")


@dataclass
class TrainResult:
    # one row per logged step: step, epoch, lr, loss, err; test_err at evaluation steps
    history: pd.DataFrame
    diverged: bool
    final: dict = field(default_factory=dict)  # final train/test loss and error over the whole sets
    convergence: dict = field(default_factory=dict)  # see ``convergence``

    @property
    def converged(self) -> bool:
        return bool(self.convergence.get("converged", False))


def convergence(losses, lrs=None, errors=None, window: float = 0.2, tol: float = 0.05,
                fit: float = 0.02) -> dict:
    """Had training finished what more steps of the same recipe could do? Two ways to say yes.

    1. The net fits its training data: the mean logged training error over the last 5% of the steps
       is at most ``fit`` (for classification, all but ``fit`` of the batches right). More steps
       cannot lower it much.
    2. The loss had flattened while the learning rate was still high. The *high-rate phase* is the
       steps whose rate is at least half the run's peak (all steps when ``lrs`` is not given or the
       rate is constant; the steps before the drop of a step schedule; about 15% to 65% of a
       one-cycle run). It is cut into parts of ``window`` of its steps; ``late_share = (m_last2 -
       m_last) / (m_first - m_last)``, with ``m`` the mean loss of a part, is the share of the
       phase's loss fall that came in its last part. A loss still falling steadily gives about
       ``window`` (0.2); a plateau gives about 0. Converged when ``late_share < tol``. A loss that
       did not fall over the phase (stuck or rising) also counts: more steps at that rate would not
       lower it.

    Why not the last steps of the run: under a cosine or one-cycle schedule the rate goes to zero at
    the end, and the loss stops moving whatever the state of the net (measured on CIFAR-10: plain-56
    at 78% training error changed 1% over its last fifth). A run with fewer than 4 logged steps per
    part of its high-rate phase, or a non-finite loss there, is not converged.

    Returns:
        ``{"converged", "reason", "late_share", "final_err", "tol", "fit", "window", "steps"}``.
    """
    v = np.asarray([float(x) for x in losses], dtype=float)
    out = {"converged": False, "reason": "too short to tell", "late_share": math.nan,
           "final_err": math.nan,
           "tol": tol, "fit": fit, "window": window, "steps": len(v)}
    if errors is not None and len(errors):
        e = np.asarray([float(x) for x in errors], dtype=float)
        tail = e[-max(1, int(round(0.05 * len(e)))):]
        out["final_err"] = float(np.nanmean(tail)) if np.isfinite(tail).any() else math.nan
        if out["final_err"] <= fit and len(v) and np.isfinite(v[-len(tail):]).all():
            return {**out, "converged": True,
                    "reason": f"fits the training data (error {out['final_err']:.3f})"}
    phase = v
    if lrs is not None and len(lrs) == len(v) and len(v):
        r = np.asarray([float(x) for x in lrs], dtype=float)
        high = np.flatnonzero(r >= 0.5 * np.nanmax(r))
        phase = v[high[0]:high[-1] + 1] if len(high) else v
    n_parts = max(2, int(round(1 / window)))
    if len(phase) < 4 * n_parts or not np.isfinite(phase).all():
        return out
    m = [p.mean() for p in np.array_split(phase, n_parts)]
    total = m[0] - m[-1]
    if total <= 0:
        return {**out, "converged": True, "late_share": 0.0,
                "reason": "loss did not fall at the high rate"}
    share = float((m[-2] - m[-1]) / total)
    ok = share < tol
    return {**out, "converged": bool(ok), "late_share": share,
            "reason": f"loss {'flat' if ok else 'still falling'} at the high rate ({share:.2f} of "
                      "its fall in the last part)"}


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """The learning rate at ``step`` (0-based) of ``total``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.warmup_lr if cfg.warmup_lr is not None else cfg.lr * (
            step + 1) / cfg.warmup_steps
    if cfg.schedule == "onecycle":
        peak = max(1, round(0.3 * total))
        if step < peak:
            return cfg.lr * (0.04 + 0.96 * step / peak)  # from lr/25, as torch's OneCycleLR
        t = (step - peak) / max(1, total - peak)
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * t))
    if cfg.schedule == "cosine":
        t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * t))
    if cfg.schedule == "step":
        return cfg.lr * 0.1 ** sum(step >= m * total for m in cfg.milestones)
    return cfg.lr


def classification_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of wrong arg-max predictions."""
    return (out.argmax(1) != y).float().mean()


def autocast(device: torch.device | str, precision: str):
    """The autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, data: TensorDataset, device: torch.device | str = "cpu",
             batch_size: int = 512,
             loss_fn: Callable = F.cross_entropy, err_fn: Callable = classification_error,
             precision: str = "fp32") -> dict[str, float]:
    """Mean loss and error of ``model`` on ``data`` (eval mode), averaged over examples."""
    was_training = model.training
    model.eval()
    loss, err, n = 0.0, 0.0, 0
    x_all, y_all = data.tensors[:2]
    channels_last = next(model.parameters(), torch.empty(0)).is_contiguous(
        memory_format=torch.channels_last) \
        and x_all.dim() == 4
    for i in range(0, len(x_all), batch_size):
        x, y = x_all[i:i + batch_size].to(device), y_all[i:i + batch_size].to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            out = model(x)
        out = out.float()
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
    """He et al. 2016's CIFAR augmentation on a batch, on its own device: zero-pad, random crop,
    random flip."""
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


def train(model: nn.Module, train_data: TensorDataset, cfg: TrainConfig,
          test_data: TensorDataset | None = None,
          device: torch.device | str = "cpu",
          augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
          loss_fn: Callable = F.cross_entropy,
          err_fn: Callable = classification_error) -> TrainResult:
    """Train ``model`` on ``train_data`` (cross-entropy classification unless told otherwise).

    ``augment(x, generator)``, when given, transforms each training batch
    (e.g. ``random_crop_flip``) on the batch's device. ``loss_fn(out, y)`` is
    minimised and ``err_fn(out, y)`` logged (e.g. 1 - Dice for segmentation).

    Returns:
        A ``TrainResult``; ``diverged`` is True when the loss became NaN/inf or
        exceeded ``diverge_factor`` times its first value (training stops there);
        ``convergence`` says whether the loss had stopped falling (``convergence``).
    """
    cfg.validate()
    seed_everything(cfg.seed)
    model.to(device).train()
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay,
                              nesterov=cfg.nesterov)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)
    per_epoch = math.ceil(len(train_data) / cfg.batch_size)
    total = max(1, round(cfg.epochs * per_epoch))
    eval_every = cfg.eval_every or per_epoch
    rows, diverged, first_loss, step = [], False, None, 0
    bar = tqdm(total=total, desc=cfg.desc, disable=not cfg.progress, leave=False, mininterval=0.5)
    while step < total and not diverged:
        for x, y in batches(train_data, cfg.batch_size, g):
            lr = lr_at(step, total, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if augment is not None:
                x = augment(x, g)
            if cfg.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, cfg.precision):
                out = model(x)
                loss = loss_fn(out, y)
            row = None
            if step % cfg.log_every == 0 or step == total - 1:
                value = loss.item()
                first_loss = value if first_loss is None else first_loss
                row = {"step": step, "epoch": step / per_epoch, "lr": lr, "loss": value,
                       "err": err_fn(out.detach().float(), y).item()}
                if not math.isfinite(value) or value > cfg.diverge_factor * max(first_loss, 1e-8):
                    diverged = True
                    rows.append(row)
                    break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if test_data is not None and (step % eval_every == 0 or step == total):
                row = row if row is not None else {"step": step - 1,
                                                   "epoch": (step - 1) / per_epoch, "lr": lr}
                row["test_err"] = evaluate(model, test_data, device, loss_fn=loss_fn, err_fn=err_fn,
                                           precision=cfg.precision)["err"]
            if row is not None:
                rows.append(row)
                bar.set_postfix(loss=f"{row.get('loss', math.nan):.3f}", refresh=False)
            bar.update(1)
            if step >= total:
                break
    bar.close()
    history = pd.DataFrame(rows)
    final = {}
    if not diverged and cfg.final_eval:
        tr = evaluate(model, train_data, device, loss_fn=loss_fn, err_fn=err_fn,
                      precision=cfg.precision)
        final = {"train_loss": tr["loss"], "train_err": tr["err"]}
        if test_data is not None:
            te = evaluate(model, test_data, device, loss_fn=loss_fn, err_fn=err_fn,
                          precision=cfg.precision)
            final.update(test_loss=te["loss"], test_err=te["err"])
    logged = history.dropna(subset=["loss"]) if "loss" in history else history.iloc[0:0]
    conv = convergence(logged.get("loss", []), logged.get("lr"), logged.get("err"),
                       cfg.converge_window,
                       cfg.converge_tol, cfg.converge_fit)
    if diverged:
        conv.update(converged=False)
    return TrainResult(history, diverged, final, conv)
