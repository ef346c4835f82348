"""He et al.'s bottleneck ResNet for CIFAR (ResNet-164): the larger ResNet Huang et al. set beside
DenseNet-BC.

He, Zhang, Ren, Sun. "Identity Mappings in Deep Residual Networks", ECCV 2016: depth 9n+2 (n = 18
gives 164), three stages of n bottleneck blocks (1x1 to m channels, 3x3 at m, 1x1 to 4m; m = 16, 32,
64), pre-activation (BN-ReLU before each convolution, nothing after the addition), a 1x1 projection
shortcut where the shape changes, then BN-ReLU, global average pooling and a linear classifier.
ResNet-164 has 1.7M parameters (the paper's Table 2; Huang et al. 2017, Table 2, compare
DenseNet-BC-100 with 0.8M against it on C10+).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EXPANSION = 4


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1x1 (to ``mid``), BN-ReLU-conv3x3 (``stride``), BN-ReLU-conv1x1 (to 4 ``mid``),
    plus the input (or its 1x1 projection of the pre-activated input when the shape changes)."""

    def __init__(self, in_ch: int, mid: int, stride: int = 1):
        super().__init__()
        out = mid * EXPANSION
        self.bn1, self.conv1 = nn.BatchNorm2d(in_ch), nn.Conv2d(in_ch, mid, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(mid), nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn3, self.conv3 = nn.BatchNorm2d(mid), nn.Conv2d(mid, out, 1, bias=False)
        self.shortcut = (nn.Conv2d(in_ch, out, 1, stride, bias=False) if stride != 1 or in_ch != out
                         else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        short = x if self.shortcut is None else self.shortcut(pre)
        y = self.conv1(pre)
        y = self.conv2(F.relu(self.bn2(y)))
        y = self.conv3(F.relu(self.bn3(y)))
        return y + short


class BottleneckResNet(nn.Module):
    """The pre-activation bottleneck ResNet of depth ``9n + 2`` for ``size``-px images (see the
    module docstring)."""

    def __init__(self, depth: int = 164, num_classes: int = 10, in_channels: int = 3,
                 width: int = 1):
        super().__init__()
        if depth < 11 or (depth - 2) % 9:
            raise ValueError(f"depth={depth} is not allowed for a bottleneck ResNet; "
                             "use 9n+2 (11, 20, ..., 164)")
        n = (depth - 2) // 9
        self.stem = nn.Conv2d(in_channels, 16 * width, 3, padding=1, bias=False)
        blocks, in_ch = [], 16 * width
        for stage, mid in enumerate((16 * width, 32 * width, 64 * width)):
            for i in range(n):
                blocks.append(PreActBottleneck(in_ch, mid, 2 if stage > 0 and i == 0 else 1))
                in_ch = mid * EXPANSION
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(in_ch)
        self.head = nn.Linear(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.blocks(self.stem(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))
