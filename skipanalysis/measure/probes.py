"""Probes of a net's insides: gradient norms per convolution, gradients along a line through input
space (shattering, Balduzzi et al. 2017), lesions of residual blocks and the gradient each path
length carries (Veit et al. 2016)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from .. import train as tr
from ..models.blocks import BasicBlock, ShortcutA
from ..models.resnet import CifarResNet


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The model's convolutions in definition order (which is forward order for the families
    here)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)
            and not getattr(m, "is_gate", False)]


def _bn_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()
            if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def conv_grad_norms(model: nn.Module, data: TensorDataset, n_batches: int = 2, batch_size: int = 64,
                    device: torch.device | str = "cpu") -> pd.DataFrame:
    """Norm of the loss gradient for every convolution's weight, averaged over the first
    ``n_batches`` batches.

    The probe runs in train mode (batch statistics, as in training) and in fp32 (autocast off); it
    uses ``torch.autograd.grad``, so ``.grad`` is untouched, and restores the batch-norm running
    statistics and the train/eval mode, so probing a net during training does not change its
    training.

    Returns:
        One row per convolution: ``layer`` (1-based), ``name``, ``numel`` (weights), ``grad_norm``
        and ``grad_rms = grad_norm / sqrt(numel)`` (the root-mean-square gradient per weight, which
        does not grow with a layer's size).
    """
    model.to(device)
    was_training, saved = model.training, _bn_buffers(model)
    model.train()
    convs = conv_layers(model)
    weights = [m.weight for _, m in convs]
    acc = np.zeros(len(convs))
    x_all, y_all = data.tensors[:2]
    try:
        with torch.autocast(torch.device(device).type, enabled=False):
            for b in range(n_batches):
                x = x_all[b * batch_size:(b + 1) * batch_size].to(device).float()
                y = y_all[b * batch_size:(b + 1) * batch_size].to(device)
                grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights)
                acc += np.array([g.norm().item() for g in grads]) / n_batches
    finally:
        model.load_state_dict(saved, strict=False)
        model.train(was_training)
    numel = np.array([w.numel() for w in weights])
    return pd.DataFrame(
        {"layer": range(1, len(convs) + 1), "name": [n for n, _ in convs], "numel": numel,
                         "grad_norm": acc, "grad_rms": acc / np.sqrt(numel)})


def early_late_ratio(df: pd.DataFrame, k: int = 3, column: str = "grad_rms") -> float:
    """Mean of ``column`` over the first ``k`` convolutions divided by its mean over the last
    ``k``."""
    g = df.sort_values("layer")[column].to_numpy()
    return float(g[:k].mean() / g[-k:].mean())


def line_gradients(model: nn.Module, x0: torch.Tensor, direction: torch.Tensor, n_points: int = 128,
                   span: float = 1.0, seed: int = 0, batch_stats: bool = False) -> torch.Tensor:
    """Input gradients of a fixed random read-out of the logits at ``n_points`` along ``x0 + t *
    direction``.

    Returns ``(n_points, numel)``. The model is evaluated in eval mode so each point is independent;
    with ``batch_stats`` in train mode, so batch norm normalises with the statistics of the line's
    points (the batch).
    """
    model.train(batch_stats)
    t = torch.linspace(-span, span, n_points)[:, None, None, None]
    x = (x0[None] + t * direction[None]).requires_grad_(True)
    out = model(x)
    w = torch.randn(out.shape[1], generator=torch.Generator().manual_seed(seed))
    (out @ w).sum().backward()
    return x.grad.reshape(n_points, -1)


def neighbour_correlation(grads: torch.Tensor) -> float:
    """Mean cosine similarity between the gradients at adjacent points of the line."""
    a, b = grads[:-1], grads[1:]
    return F.cosine_similarity(a, b, dim=1).mean().item()


class Lesion(nn.Module):
    """Stands in for a deleted block: only its (option A) shortcut remains."""

    def __init__(self, block: BasicBlock):
        super().__init__()
        self.shortcut = ShortcutA(block.conv1.in_channels, block.conv1.out_channels,
                                  block.conv1.stride[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x)


@torch.no_grad()
def error_with_lesions(model: CifarResNet, data: TensorDataset, blocks: list[int],
                       device="cpu") -> float:
    """Test error with the given blocks (0-based) deleted; the model is restored afterwards."""
    saved = {i: model.blocks[i] for i in blocks}
    try:
        for i in blocks:
            model.blocks[i] = Lesion(saved[i])
        return tr.evaluate(model, data, device)["err"]
    finally:
        for i, b in saved.items():
            model.blocks[i] = b


@torch.no_grad()
def single_lesions(model: CifarResNet, data: TensorDataset, device="cpu",
                   batch_size: int = 512) -> pd.DataFrame:
    """Test error after deleting each block in turn (and with none deleted, as ``block`` 0).

    The blocks before a deleted one compute exactly what they compute in the intact net, so each
    batch goes through the intact net once, keeping every block's input, and each lesion restarts
    from its block's input: the numbers of ``error_with_lesions`` (the same operations on the same
    batches) for about half the work.
    """
    was_training = model.training
    model.eval()
    n = len(model.blocks)
    wrong = torch.zeros(n + 1, dtype=torch.float64)
    x_all, y_all = data.tensors[:2]
    channels_last = next(model.parameters()).is_contiguous(memory_format=torch.channels_last)
    for i in range(0, len(x_all), batch_size):
        x, y = x_all[i:i + batch_size].to(device), y_all[i:i + batch_size].to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        inputs, h = [], model.stem(x)
        for block in model.blocks:
            inputs.append(h)
            h = block(h)
        outs = [h]  # intact, then block j deleted: its shortcut alone, then the blocks after it
        for j in range(n):
            h = Lesion(model.blocks[j])(inputs[j])
            for block in model.blocks[j + 1:]:
                h = block(h)
            outs.append(h)
        for j, h in enumerate(outs):
            logits = model.head(F.adaptive_avg_pool2d(h, 1).flatten(1)).float()
            wrong[j] += tr.classification_error(logits, y).item() * len(y)
    model.train(was_training)
    return pd.DataFrame({"block": range(n + 1), "err": (wrong / len(x_all)).tolist()})


def random_lesions(model: CifarResNet, data: TensorDataset, ks: list[int], draws: int = 5,
                   seed: int = 0,
                   device="cpu") -> pd.DataFrame:
    """Test error after deleting ``k`` randomly chosen blocks together, ``draws`` times per k."""
    rng = random.Random(seed)
    n = len(model.blocks)
    return pd.DataFrame([
        {"k": k, "draw": d, "err": error_with_lesions(model, data, rng.sample(range(n), k), device)}
                         for k in ks for d in range(draws)])


def path_gradients(model: CifarResNet, x: torch.Tensor, y: torch.Tensor, samples: int = 20,
                   seed: int = 0
                   ) -> pd.DataFrame:
    """Veit et al. 2016, section 6: gradient norm at the first block's input carried by paths of
    each length k.

    The forward pass is the network's own; in the backward pass k randomly chosen blocks pass
    gradient only through their residual branch and the others only through their shortcut (the
    forward values are unchanged, the other route is detached). Returns, per k, the mean gradient
    norm per path, the number of paths C(n, k), and their product (the total carried).
    """
    model.eval()
    n = len(model.blocks)
    rng = random.Random(seed)
    h0 = model.stem(x).detach().requires_grad_(True)
    rows = []
    for k in range(n + 1):
        norms = []
        for _ in range(samples if 0 < k < n else 1):
            chosen = set(rng.sample(range(n), k))
            h = h0
            for i, b in enumerate(model.blocks):
                branch, skip = b.branch(h), b.shortcut(h)
                h = F.relu(skip.detach() + branch) if i in chosen else F.relu(
                    skip + branch.detach())
            loss = F.cross_entropy(model.head(F.adaptive_avg_pool2d(h, 1).flatten(1)), y)
            (g,) = torch.autograd.grad(loss, h0)
            norms.append(g.norm().item())
        count = math.comb(n, k)
        rows.append({"length": k, "grad_per_path": float(np.mean(norms)), "paths": count,
                     "share_of_paths": count / 2 ** n})
    df = pd.DataFrame(rows)
    df["total_grad"] = df.grad_per_path * df.paths
    df["share_of_grad"] = df.total_grad / df.total_grad.sum()
    return df


class ProbeDuringTraining:
    """Measures ``conv_grad_norms`` at given training steps, through ``train.train``'s per-batch
    ``augment`` hook.

    ``train.train`` calls ``augment(x, generator)`` once per training step, before the forward pass
    and outside autocast; this callable returns the batch unchanged and, at the steps asked for,
    probes the model (fp32, its own fixed batches, batch-norm statistics restored), so training runs
    exactly as without it.
    """

    def __init__(self, model: nn.Module, data: TensorDataset, steps: Iterable[int],
                 grad_batches: int,
                 batch_size: int, device: torch.device | str):
        self.model, self.data, self.steps = model, data, set(steps)
        self.grad_batches, self.batch_size, self.device = grad_batches, batch_size, device
        self.step, self.profiles = 0, {}

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.step in self.steps:
            self.profiles[self.step] = conv_grad_norms(self.model, self.data, self.grad_batches,
                                                       self.batch_size,
                                                       self.device)
        self.step += 1
        return x
