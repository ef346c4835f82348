"""Parameters and FLOPs, with the convention stated: fvcore counts one FLOP per multiply-add (MACs),
``torch.utils.flop_counter`` two (a multiply and an add). On convolutions and matrix products the
two agree up to that factor of 2; fvcore also counts batch-norm and pooling, which the PyTorch
counter leaves out."""

from __future__ import annotations

import torch
from torch import nn

from ..models import create


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def torchvision_model(name: str) -> nn.Module:
    """An untrained torchvision model by name (``resnet50``, ``densenet121``, ``efficientnet_b0``,
    ``regnet_y_400mf``)."""
    return create(f"tv:{name}")


def fvcore_flops(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """fvcore's forward count (multiply-adds) by operator, with ``total``."""
    from fvcore.nn import FlopCountAnalysis

    model.eval()
    fa = FlopCountAnalysis(model, x)
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    out = {k: float(v) for k, v in fa.by_operator().items()}
    out["total"] = float(fa.total())
    return out


def fvcore_by_module(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """fvcore's forward multiply-adds per submodule name."""
    from fvcore.nn import FlopCountAnalysis

    model.eval()
    fa = FlopCountAnalysis(model, x)
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    return {k: float(v) for k, v in fa.by_module().items()}


def torch_flops(model: nn.Module, x: torch.Tensor) -> float:
    """``torch.utils.flop_counter``'s forward count (two FLOPs per multiply-add; convolutions and
    matmuls only)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())


def conv_macs(in_ch: int, out_ch: int, kernel: int, out_h: int, out_w: int, groups: int = 1) -> int:
    """Multiply-adds of a convolution, by hand: one per weight per output position."""
    return out_ch * out_h * out_w * (in_ch // groups) * kernel * kernel


def bytes_moved(model: nn.Module, x: torch.Tensor) -> float:
    """A simple estimate of DRAM traffic for one forward pass: every leaf module reads its input and
    weights and writes its output once (fp32). Used for arithmetic intensity = FLOPs / bytes."""
    total = [0.0]

    def hook(mod, inp, out):
        ins = sum(t.numel() for t in inp if isinstance(t, torch.Tensor))
        outs = out.numel() if isinstance(out, torch.Tensor) else 0
        total[0] += 4 * (ins + outs + sum(p.numel() for p in mod.parameters(recurse=False)))

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total[0]
