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
            self.bottleneck = nn.Sequential(nn.BatchNorm2d(in_ch), nn.ReLU(),
                                            nn.Conv2d(in_ch, mid, 1, bias=False))
        else:
            mid, self.bottleneck = in_ch, nn.Identity()
        self.conv = nn.Sequential(nn.BatchNorm2d(mid), nn.ReLU(),
                                  nn.Conv2d(mid, growth, 3, 1, 1, bias=False))

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
        self.layers = nn.ModuleList(DenseLayer(in_ch + i * growth, growth, bn_size)
                                    for i in range(n_layers))
        self.out_ch = in_ch + n_layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)


class DenseStageNet(nn.Module):
    """Stem conv (2k maps), one dense block, BN-ReLU, pool, linear: the dense twin of
    ``ResidualStageNet``."""

    def __init__(self, growth: int = 12, n_layers: int = 6, num_classes: int = 10,
                 in_channels: int = 3,
                 bn_size: int = 4):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 2 * growth, 3, 1, 1, bias=False)
        self.block = DenseBlock(2 * growth, n_layers, growth, bn_size)
        self.norm = nn.BatchNorm2d(self.block.out_ch)
        self.head = nn.Linear(self.block.out_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(F.relu(self.norm(x)), 1).flatten(1))


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1 compression, then 2x2 average pooling (DenseNet-BC's transition layer)."""

    def __init__(self, in_ch: int, out_ch: int, pool: bool = True):
        super().__init__(nn.BatchNorm2d(in_ch), nn.ReLU(), nn.Conv2d(in_ch, out_ch, 1, bias=False),
                         *( [nn.AvgPool2d(2)] if pool else []))


class PartialDenseBlock(nn.Module):
    """CSP-style partial dense block (Wang et al. 2020, CSPNet): only part of the channels enter the
    dense block.

    The input is split; ``split`` of its channels go through a dense block and a 1x1 transition, the
    rest bypass it, and the two are concatenated.
    """

    def __init__(self, in_ch: int, n_layers: int, growth: int, split: float = 0.5,
                 bn_size: int = 4):
        super().__init__()
        self.part = max(1, int(round(in_ch * split)))
        self.block = DenseBlock(self.part, n_layers, growth, bn_size)
        self.fuse = Transition(self.block.out_ch, self.block.out_ch // 2, pool=False)
        self.out_ch = in_ch - self.part + self.block.out_ch // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bypass, dense = x[:, : x.shape[1] - self.part], x[:, x.shape[1] - self.part:]
        return torch.cat([bypass, self.fuse(self.block(dense))], 1)


class DenseNetBC(nn.Module):
    """DenseNet-BC for small images (Huang et al. 2017, section 3): a 2k-map stem, three dense
    blocks with compression-0.5 transitions, BN-ReLU, pooling and a linear classifier.

    Args:
        n_layers: dense layers per block (depth = 6 * n_layers + 4). growth: growth rate k.
        num_classes: output classes. in_channels: image channels. partial: use CSP-style partial
        dense blocks (half the channels bypass each block).
    """

    def __init__(self, n_layers: int = 6, growth: int = 12, num_classes: int = 10,
                 in_channels: int = 3,
                 partial: bool = False):
        super().__init__()
        if n_layers < 1 or growth < 1:
            raise ValueError(f"n_layers={n_layers!r}, growth={growth!r}: both must be positive")
        ch = 2 * growth
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ch, 3, padding=1, bias=False)]
        for i in range(3):
            block = PartialDenseBlock(ch, n_layers, growth) if partial else DenseBlock(ch, n_layers,
                                                                                       growth)
            layers.append(block)
            ch = block.out_ch
            if i < 2:
                layers.append(Transition(ch, ch // 2))
                ch //= 2
        layers += [nn.BatchNorm2d(ch), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
