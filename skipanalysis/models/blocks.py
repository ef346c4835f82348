"""The blocks of the CIFAR family: the option A shortcut, squeeze-and-excitation and the basic
block.

He et al. 2016 (section 4.2) for the basic block and the parameter-free option A shortcut; Hu et al.
2018 for squeeze-and-excitation. ``resnet.CifarResNet`` stacks these blocks, and
``highway.HighwayBlock`` gates one; both import them from here, so neither imports the other's
module in a circle.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ShortcutA(nn.Module):
    """Parameter-free shortcut: identity, or strided subsampling plus zero channel padding."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        if out_ch < in_ch:
            raise ValueError(f"option A shortcut cannot shrink channels ({in_ch} -> {out_ch})")
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        pad = self.out_ch - self.in_ch
        if pad:
            x = F.pad(x, (0, 0, 0, 0, pad // 2, pad - pad // 2))
        return x


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): re-weight channels by a gate computed from their
    global means."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(),
                                nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers; with ``shortcut=True`` the block adds its (option A) input.

    Args:
        in_ch, out_ch: channels in and out.
        stride: stride of the first convolution (2 at a stage's start).
        shortcut: residual (True) or plain (False); the parameters are the same.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, shortcut: bool = True,
                 se: bool = False,
                 bn: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch) if bn else nn.Identity()
        self.shortcut = ShortcutA(in_ch, out_ch, stride) if shortcut else None
        self.se = SqueezeExcite(out_ch) if se else nn.Identity()

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return F.relu(out)
