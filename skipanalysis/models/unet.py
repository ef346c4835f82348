"""A scaled-down U-Net with switchable long skips.

Ronneberger, Fischer, Brox. "U-Net: Convolutional Networks for Biomedical
Image Segmentation", MICCAI 2015: an encoder of (conv3x3-ReLU) x 2 stages with
2x2 max-pooling, a decoder of 2x2 up-convolutions, and long skips that
concatenate each encoder stage's output onto the decoder at the same scale.
Scaled down here (configurable depth and base width), with padded
convolutions and batch norm so the output has the input's size. The skip can
be ``concat`` (the paper), ``add`` (the encoder maps are added to the
upsampled decoder maps), or ``none`` (the decoder sees only the upsampled
bottleneck).

Concatenation doubles the input of each decoder stage's first convolution
(2w -> w: 18w^2 weights, plus 9w^2 in the second). ``decoder_mid=1.5`` widens
the middle of an ``add`` or ``none`` decoder stage to 1.5w (w -> 1.5w -> w:
13.5w^2 + 13.5w^2 = 27w^2), so its convolutions carry exactly concat's weights (w even);
only the batch norm's w extra scales and shifts per stage differ
(``matched_decoder_mid`` gives the factor).
"""

from __future__ import annotations

import torch
from torch import nn

SKIPS = ("concat", "add", "none")


def double_conv(in_ch: int, out_ch: int, mid_ch: int | None = None) -> nn.Sequential:
    """Two padded 3x3 conv-BN-ReLU layers (in -> mid -> out; mid defaults to out)."""
    mid_ch = out_ch if mid_ch is None else mid_ch
    return nn.Sequential(nn.Conv2d(in_ch, mid_ch, 3, padding=1, bias=False), nn.BatchNorm2d(mid_ch),
                         nn.ReLU(True),
                         nn.Conv2d(mid_ch, out_ch, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(True))


def matched_decoder_mid(skip: str) -> float:
    """The ``decoder_mid`` that gives ``skip``'s decoder the convolution weights of concat's (1.0
    for concat)."""
    if skip not in SKIPS:
        raise ValueError(f"skip={skip!r} is not allowed; choose one of {', '.join(SKIPS)}")
    return 1.0 if skip == "concat" else 1.5


class UNet(nn.Module):
    """U-Net with ``depth`` poolings and ``base`` channels at full resolution (doubling per level).

    Args:
        in_channels: image channels. out_channels: output maps (1 for binary segmentation, as
        logits). depth: number of 2x down-samplings; input sides must be divisible by 2**depth.
        base: channels of the first level. skip: ``concat``, ``add`` or ``none``. decoder_mid: width
        of the middle layer of each decoder stage, as a multiple of the stage's width
            (``matched_decoder_mid(skip)`` matches concat's parameters).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, depth: int = 3, base: int = 16,
                 skip: str = "concat", decoder_mid: float = 1.0):
        super().__init__()
        if skip not in SKIPS:
            raise ValueError(f"skip={skip!r} is not allowed; choose one of {', '.join(SKIPS)}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth={depth!r}: expected a positive integer")
        if not decoder_mid > 0:
            raise ValueError(f"decoder_mid={decoder_mid!r}: expected a number > 0")
        self.depth, self.skip = depth, skip
        widths = [base * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        ch = in_channels
        for w in widths[:-1]:
            self.down.append(double_conv(ch, w))
            ch = w
        self.pool = nn.MaxPool2d(2)
        self.bottom = double_conv(widths[-2], widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                for i in reversed(range(depth)))
        self.dec = nn.ModuleList(double_conv(widths[i] * (2 if skip == "concat" else 1), widths[i],
                                             max(1, round(decoder_mid * widths[i])))
                                 for i in reversed(range(depth)))
        self.out = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2 ** self.depth
        if h % m or w % m:
            raise ValueError(
                f"input size {h}x{w} is not allowed for a depth-{self.depth} U-Net: height and "
                f"width must be multiples of {m} (pad or crop the image, or lower depth)")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, dec, s in zip(self.up, self.dec, reversed(skips)):
            x = up(x)
            if self.skip == "concat":
                x = torch.cat([s, x], 1)
            elif self.skip == "add":
                x = x + s
            x = dec(x)
        return self.out(x)
