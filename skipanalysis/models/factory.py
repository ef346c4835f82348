"""One way to name and build every network of the study: ``create(name, **kw)``.

A run's config names its model by one of these strings plus keyword arguments, so the config is
plain JSON and any part of the study can rebuild the net from it (the run store, lesions,
landscapes).

The names, what each builds, and its keywords:

- ``plain-D``: the CIFAR net of He et al. 2016, depth D = 6n+2, no shortcuts; ``resnet-D``: with
  identity (option A) shortcuts; ``highway-D``: with gated shortcuts (Srivastava et al. 2015; also
  ``gate_bias``); ``se-resnet-D``: residual with squeeze-and-excitation branches (Hu et al.).
  Keywords: num_classes, in_channels, width, bn.
- ``bottleneck-resnet-D``: the pre-activation bottleneck ResNet, depth 9n+2 (164: He et al.).
  Keywords: num_classes, in_channels, width.
- ``densenet-N``: DenseNet-BC, 3 blocks of N layers (Huang et al. 2017); ``csp-densenet-N``: with
  cross-stage partial blocks (Wang et al. 2020). Keywords: growth, num_classes, in_channels.
- ``preact-stage-N``: one stage of N pre-activation residual blocks (width, num_classes, ...);
  ``dense-stage-N``: one dense block of N layers (growth, num_classes, ...).
- ``chain-N``: N conv-BN-ReLU layers; ``every=S`` adds a shortcut every S (width, every, ...).
- ``unet-SKIP``: U-Net with ``concat``, ``add`` or ``none`` long skips. Keywords: in_channels,
  depth, base, decoder_mid, out_channels.
- ``encoder-pre``, ``encoder-post``: transformer encoder, pre-norm or post-norm (Xiong et al. 2020).
  Keywords: vocab, seq_len, depth, d_model, n_heads, d_ff.
- ``tv:NAME``: ``torchvision.models.NAME(weights=None)`` (resnet50, ...).

The CIFAR family receives its block class from here (``block=``, as timm does), so ``resnet.py``
knows nothing of highway or squeeze-and-excitation blocks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

from .blocks import BasicBlock
from .bottleneck import BottleneckResNet
from .densenet import DenseNetBC, DenseStageNet
from .highway import HighwayBlock
from .resnet import CifarResNet, ResidualStageNet, SkipEveryNet
from .transformer import Encoder
from .unet import UNet

# CIFAR family: the name's prefix -> the kind label CifarResNet keeps (data frames and plots use the
# kinds).
CIFAR_KINDS = {"plain": "plain", "resnet": "residual", "highway": "highway",
               "se-resnet": "se-residual"}
NAME_OF_KIND = {kind: prefix for prefix, kind in CIFAR_KINDS.items()}
PATTERNS = {
    "cifar": re.compile(r"^(plain|resnet|highway|se-resnet)-(\d+)$"),
    "bottleneck": re.compile(r"^bottleneck-resnet-(\d+)$"),
    "densenet": re.compile(r"^(densenet|csp-densenet)-(\d+)$"),
    "stage": re.compile(r"^(preact-stage|dense-stage|chain)-(\d+)$"),
    "unet": re.compile(r"^unet-(concat|add|none)$"),
    "encoder": re.compile(r"^encoder-(pre|post)$"),
    "torchvision": re.compile(r"^tv:([a-z0-9_]+)$"),
}
FORMS = ("plain-D, resnet-D, highway-D, se-resnet-D (D = 6n+2), bottleneck-resnet-D (D = 9n+2), "
         "densenet-N, csp-densenet-N, preact-stage-N, dense-stage-N, chain-N, "
         "unet-concat|add|none, encoder-pre|post, tv:<torchvision name>")


def cifar_block(kind: str, gate_bias: float = -2.0) -> Callable[..., nn.Module]:
    """The block class (a callable ``(in_ch, out_ch, stride, bn=)``) of a CIFAR-family kind."""
    if kind == "highway":
        return partial(HighwayBlock, gate_bias=gate_bias)
    if kind not in ("plain", "residual", "se-residual"):
        raise ValueError(
            f"kind={kind!r} is not allowed; choose one of {', '.join(CIFAR_KINDS.values())}")
    return partial(BasicBlock, shortcut=kind != "plain", se=kind == "se-residual")


def cifar_name(kind: str, depth: int) -> str:
    """The factory name of a CIFAR-family net by kind label: ``("residual", 20)`` ->
    ``resnet-20``."""
    if kind not in NAME_OF_KIND:
        raise ValueError(f"kind={kind!r} is not allowed; choose one of {', '.join(NAME_OF_KIND)}")
    return f"{NAME_OF_KIND[kind]}-{depth}"


def cifar_resnet(depth: int, kind: str = "residual", gate_bias: float = -2.0,
                 **kw: Any) -> CifarResNet:
    """A CIFAR-family net by kind label (``plain``, ``residual``, ``highway``, ``se-residual``)."""
    return CifarResNet(depth, kind, block=cifar_block(kind, gate_bias), **kw)


def known(name: str) -> bool:
    """Whether ``name`` has one of the forms ``create`` builds (depth rules are checked when
    building)."""
    return isinstance(name, str) and any(p.match(name) for p in PATTERNS.values())


def create(name: str, **kw: Any) -> nn.Module:
    """Build the network ``name`` (see the module docstring) with keyword arguments ``kw``; freshly
    initialised, so seed first (``train.seed_everything``) for a given initialisation."""
    if m := PATTERNS["cifar"].match(name):
        return cifar_resnet(int(m.group(2)), CIFAR_KINDS[m.group(1)], **kw)
    if m := PATTERNS["bottleneck"].match(name):
        return BottleneckResNet(int(m.group(1)), **kw)
    if m := PATTERNS["densenet"].match(name):
        kw.setdefault("growth", 12)
        return DenseNetBC(int(m.group(2)), partial=m.group(1) == "csp-densenet", **kw)
    if m := PATTERNS["stage"].match(name):
        n, form = int(m.group(2)), m.group(1)
        if form == "preact-stage":
            return ResidualStageNet(n_blocks=n, **kw)
        if form == "dense-stage":
            return DenseStageNet(n_layers=n, **kw)
        return SkipEveryNet(n_layers=n, **kw)
    if m := PATTERNS["unet"].match(name):
        return UNet(skip=m.group(1), **kw)
    if m := PATTERNS["encoder"].match(name):
        return Encoder(norm=m.group(1), **kw)
    if m := PATTERNS["torchvision"].match(name):
        import torchvision

        if not hasattr(torchvision.models, m.group(1)):
            raise ValueError(f"model {name!r}: torchvision.models has no {m.group(1)!r}")
        return getattr(torchvision.models, m.group(1))(weights=None, **kw)
    raise ValueError(f"model {name!r} is not allowed; use one of {FORMS}")
