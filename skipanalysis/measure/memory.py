"""Activation memory: the bytes autograd saves for backward, counted exactly with
``torch.autograd.graph.saved_tensors_hooks`` (each saved storage once, views and repeats
deduplicated, parameters excluded); and the memory-efficient dense layer of Pleiss et al. 2017
(concatenation, norm and 1x1 convolution recomputed in backward through ``torch.utils.checkpoint``)
beside its naive form."""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..models.densenet import DenseBlock, DenseLayer
from ..models.resnet import PreActBlock


@contextmanager
def count_saved_bytes(params: list[torch.Tensor] | None = None):
    """Count the bytes autograd saves for backward inside the block; yields a dict filled on exit.

    Each storage is counted once (by its data pointer); tensors sharing storage
    with a parameter are left out. The dict gets ``bytes`` and ``tensors``.
    """
    param_ptrs = {p.untyped_storage().data_ptr() for p in (params or [])}
    seen: dict[int, int] = {}
    result: dict[str, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in param_ptrs and ptr not in seen:
            seen[ptr] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield result
    result["bytes"] = sum(seen.values())
    result["tensors"] = len(seen)


def saved_bytes(module: nn.Module, x: torch.Tensor) -> int:
    """Bytes saved for backward by one training-mode forward pass of ``module`` on ``x``.

    The count follows storages by their data pointers. An XLA tensor has none (its storage lives in
    the XLA runtime), so there the same module and input are counted on a CPU copy: what autograd
    saves is fixed by the graph, not by the device.
    """
    if x.device.type not in ("cpu", "cuda", "mps"):
        module, x = copy.deepcopy(module).cpu(), x.detach().cpu()
    module.train()
    x = x.detach().requires_grad_(True)
    with count_saved_bytes(list(module.parameters())) as r:
        out = module(x)
    del out
    return r["bytes"]


class EfficientDenseLayer(DenseLayer):
    """A dense layer whose concatenation, first norm and 1x1 convolution are recomputed in backward.

    Pleiss et al. 2017: only the layer's inputs (already stored by earlier
    layers) are kept, so memory grows linearly with depth instead of quadratically.
    """

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        def bottleneck(*fs):
            return self.bottleneck(torch.cat(fs, 1))

        if torch.is_grad_enabled() and any(f.requires_grad for f in features):
            # torch.utils.checkpoint looks for a torch.xla module that is not there
            if features[0].device.type == "xla":
                from torch_xla.utils.checkpoint import checkpoint as xla_checkpoint

                mid = xla_checkpoint(bottleneck, *features, use_reentrant=True)
            else:
                mid = checkpoint(bottleneck, *features, use_reentrant=False)
        else:
            mid = bottleneck(*features)
        return self.conv(mid)


class EfficientDenseBlock(DenseBlock):
    """``DenseBlock`` built from ``EfficientDenseLayer``; same parameters, same outputs and
    gradients."""

    def __init__(self, in_ch: int, n_layers: int, growth: int, bn_size: int = 4):
        super().__init__(in_ch, n_layers, growth, bn_size)
        self.layers = nn.ModuleList(EfficientDenseLayer(in_ch + i * growth, growth, bn_size)
                                    for i in range(n_layers))


class ResidualStage(nn.Sequential):
    """``n_blocks`` pre-activation residual blocks of constant width (the linear-memory
    reference)."""

    def __init__(self, width: int, n_blocks: int):
        super().__init__(*[PreActBlock(width) for _ in range(n_blocks)])


# Pleiss et al. 2017: DenseNet-BC-100 (k = 12) trained at batch 64 on CIFAR, the GPU memory of the
# naive
# implementation against the memory-efficient one (shared storages, recomputation), in GB.
PLEISS_PEAK_GB = {"naive": 2.863, "efficient": 1.605}


def efficient(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose dense layers recompute their concatenation, norm and 1x1
    convolution in backward (``EfficientDenseLayer``): the same parameters, outputs and
    gradients."""
    out = copy.deepcopy(model)
    for m in out.modules():
        if type(m) is DenseLayer:
            m.__class__ = EfficientDenseLayer
    return out


def allocator_peaks(model: nn.Module, batch: int, size: int,
                    device: torch.device | str) -> dict[str, int] | None:
    """The CUDA allocator's peak (``torch.cuda.max_memory_allocated``, bytes) over one training step
    (forward and backward of a ``batch`` of ``size`` px images) of ``model`` as built (``naive``)
    and with its dense layers recomputed (``efficient``), parameters and gradients included, as
    Pleiss et al. measured. None off CUDA: a CPU has no allocator peak to read (the saved-bytes
    counts stand in for it there)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    out = {}
    for name, m in (("naive", model), ("efficient", efficient(model))):
        m = m.to(device).train()
        x = torch.randn(batch, 3, size, size, device=device)
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        m(x).float().sum().backward()
        torch.cuda.synchronize(device)
        out[name] = int(torch.cuda.max_memory_allocated(device))
        m.zero_grad(set_to_none=True)
        del m, x
    return out
