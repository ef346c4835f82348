"""Highway blocks for the CIFAR family.

Srivastava, Greff, Schmidhuber. "Training Very Deep Networks", NeurIPS 2015:
``y = T(x) * H(x) + (1 - T(x)) * x`` with a learned transform gate
``T(x) = sigmoid(W_T x + b_T)`` whose bias starts negative, so a new network
begins close to carrying its input through (they suggest -1 to -3, more
negative for deeper nets; the default here is -2). Here H is the two-convolution
branch of the CIFAR basic block, x passes through the same parameter-free
option A shortcut, and T is a 1x1 convolution of that shortcut, one gate per
channel and position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import BasicBlock, ShortcutA


class HighwayBlock(BasicBlock):
    """A CIFAR basic block whose shortcut is gated: ``relu(T * H(x) + (1 - T) * shortcut(x))``."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, gate_bias: float = -2.0,
                 bn: bool = True):
        super().__init__(in_ch, out_ch, stride, shortcut=True, bn=bn)
        self.gate = nn.Conv2d(out_ch, out_ch, 1, bias=True)
        self.gate.is_gate = True
        nn.init.xavier_uniform_(self.gate.weight)
        nn.init.constant_(self.gate.bias, gate_bias)
        # mean T of the last forward pass, for "how open are the gates"
        self.last_gate_mean: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        carry = self.shortcut(x)
        t = torch.sigmoid(self.gate(carry))
        self.last_gate_mean = t.detach().mean().item()
        return F.relu(t * self.branch(x) + (1 - t) * carry)


__all__ = ["HighwayBlock", "ShortcutA"]
