"""DenseNet-BC layers and blocks.

Huang, Liu, van der Maaten, Weinberger. "Densely Connected Convolutional
Networks", CVPR 2017. Each layer sees the concatenation of the block's input
and every earlier layer's output, applies BN-ReLU-Conv1x1 (a bottleneck of
``bn_size * k`` channels) then BN-ReLU-Conv3x3, and contributes ``k`` (the
growth rate) new feature maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DenseLayer(nn.Module):
    """One DenseNet-BC layer: takes the list of earlier feature maps, returns ``k`` new ones.

    Args:
        in_ch: channels of the concatenated input.
        growth: k, the new feature maps this layer adds.
        bn_size: bottleneck width as a multiple of k (4 in the paper); 0 drops the bottleneck.
    """

    def __init__(self, in_ch: int, growth: int, bn_size: int = 4):
        super().__init__()
        self.in_ch, self.growth = in_ch, growth
        if bn_size:
            mid = bn_size * growth
            self.bottleneck = nn.Sequential(nn.BatchNorm2d(in_ch), nn.ReLU(), nn.Conv2d(in_ch, mid, 1, bias=False))
        else:
            mid, self.bottleneck = in_ch, nn.Identity()
        self.conv = nn.Sequential(nn.BatchNorm2d(mid), nn.ReLU(), nn.Conv2d(mid, growth, 3, 1, 1, bias=False))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)
        return self.conv(self.bottleneck(x))


def dense_layer_params(in_ch: int, growth: int, bn_size: int = 4) -> int:
    """Parameters of a ``DenseLayer`` by hand: two BNs (2 per channel) and two bias-free convs."""
    mid = bn_size * growth
    return 2 * in_ch + in_ch * mid + 2 * mid + mid * 9 * growth


class DenseBlock(nn.Module):
    """``n_layers`` dense layers; the output concatenates the input and every layer's new maps."""

    def __init__(self, in_ch: int, n_layers: int, growth: int, bn_size: int = 4):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers={n_layers!r}: a dense block needs at least one layer")
        self.layers = nn.ModuleList(DenseLayer(in_ch + i * growth, growth, bn_size) for i in range(n_layers))
        self.out_ch = in_ch + n_layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)


class DenseStageNet(nn.Module):
    """Stem conv (2k maps), one dense block, BN-ReLU, pool, linear: the dense twin of ``ResidualStageNet``."""

    def __init__(self, growth: int = 12, n_layers: int = 6, num_classes: int = 10, in_channels: int = 3,
                 bn_size: int = 4):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 2 * growth, 3, 1, 1, bias=False)
        self.block = DenseBlock(2 * growth, n_layers, growth, bn_size)
        self.norm = nn.BatchNorm2d(self.block.out_ch)
        self.head = nn.Linear(self.block.out_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(F.relu(self.norm(x)), 1).flatten(1))
