"""CIFAR-style plain, residual and highway networks.

He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition", CVPR 2016,
section 4.2: depth 6n+2, three stages of 2n 3x3 convolutions with {16, 32, 64}
filters, batch norm, He initialisation, and option A shortcuts (identity,
strided subsampling plus zero channel padding when the shape changes), so a
plain and a residual net of one depth have exactly the same parameters.

``PreActBlock`` follows He et al., "Identity Mappings in Deep Residual
Networks", ECCV 2016: with BN-ReLU before each convolution and nothing after
the addition, a stage's output is exactly its input plus the sum of the
branches' outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import BasicBlock

KINDS = ("plain", "residual", "highway", "se-residual")


class CifarResNet(nn.Module):
    """The depth 6n+2 CIFAR network: plain, residual or highway.

    Args:
        depth: 6n+2 (20, 32, 44, 56, 110, ...). kind: ``residual`` (ResNet), ``plain`` (the same
        layers, no shortcut) or
            ``highway`` (gated shortcut, see ``highway.HighwayBlock``) or ``se-residual`` (residual
            with squeeze-and-excitation on each branch, Hu et al. 2018).
        num_classes: output classes. width: multiplier on the {16, 32, 64} stage widths.
        in_channels: image channels. gate_bias: initial bias of the highway gates (negative: start
        close to carrying the input). bn: batch normalisation after every convolution (False: none
        anywhere, for gradient studies). block: the block class, a callable ``(in_ch, out_ch,
        stride, bn=)`` (``factory.cifar_block(kind)``; default:
            ``BasicBlock`` with or without its shortcut). ``kind`` is then the label the net
            carries.
    """

    def __init__(self, depth: int = 20, kind: str = "residual", num_classes: int = 10,
                 width: int = 1,
                 in_channels: int = 3, bn: bool = True, block=None):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not allowed; choose one of {', '.join(KINDS)}")
        if block is None and kind not in ("plain", "residual"):
            raise ValueError(
                f"kind={kind!r} needs its block class: build the net with models.create (e.g. "
                             f"'highway-20') or pass block=models.factory.cifar_block({kind!r})")
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f"depth={depth!r} is not allowed: the CIFAR family needs depth = 6n+2 with n >= 1 "
                             "(8, 14, 20, 32, 44, 56, 110, ...)")
        if width < 1:
            raise ValueError(f"width={width!r}: the width multiplier must be a positive integer")
        n = (depth - 2) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.depth, self.kind, self.width = depth, kind, width
        self.stage_blocks = n
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]) if bn else nn.Identity(),
                                  nn.ReLU(inplace=True))
        blocks, in_ch = [], widths[0]
        for stage, out_ch in enumerate(widths):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                if block is None:
                    blocks.append(BasicBlock(in_ch, out_ch, stride, kind != "plain", bn=bn))
                else:
                    blocks.append(block(in_ch, out_ch, stride, bn=bn))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and not getattr(m, "is_gate", False):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class PreActBlock(nn.Module):
    """Pre-activation residual block: ``x + conv(relu(bn(conv(relu(bn(x))))))``, constant width."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualStageNet(nn.Module):
    """Stem conv, one stage of ``n_blocks`` pre-activation blocks at constant width, pool, linear.

    Small enough to train on a CPU in seconds; used where an exact sum of branch
    outputs matters (notebook 03).
    """

    def __init__(self, width: int = 32, n_blocks: int = 6, num_classes: int = 10,
                 in_channels: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.blocks = nn.ModuleList(PreActBlock(width) for _ in range(n_blocks))
        self.norm = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return self.head(F.adaptive_avg_pool2d(F.relu(self.norm(x)), 1).flatten(1))


class SkipEveryNet(nn.Module):
    """A chain of conv-BN-ReLU layers at constant width with an identity shortcut around every
    ``every`` layers.

    ``every=0`` is a plain chain; ``every=1`` puts a shortcut around each layer. Used to sweep
    connectivity from plain towards residual (notebook 02); the dense end of the sweep is
    ``DenseStageNet``.
    """

    def __init__(self, width: int = 16, n_layers: int = 12, every: int = 0, num_classes: int = 10,
                 in_channels: int = 3):
        super().__init__()
        if every < 0 or (every and n_layers % every):
            raise ValueError(f"every={every!r} must be 0 or divide n_layers={n_layers}")
        self.every = every
        self.stem = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                                  nn.ReLU()) for _ in range(n_layers))
        self.head = nn.Linear(width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        start = h
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if self.every and (i + 1) % self.every == 0:
                h = h + start
                start = h
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1))
