"""The network families under study, one file each.

- ``blocks``: the CIFAR family's blocks (option A shortcut, squeeze-and-excitation, basic block).
- ``resnet``: the CIFAR family of He et al. 2016 (depth 6n+2, plain or residual, option A shortcuts)
  and a pre-activation residual stage.
- ``densenet``: DenseNet-BC layers and blocks (Huang et al. 2017).
- ``highway``: gated shortcut blocks for the CIFAR family (Srivastava et al. 2015).
- ``transformer``: a small encoder with post-norm or pre-norm blocks (Xiong et al. 2020).
- ``unet``: a U-Net with concat / add / no long skips (Ronneberger et al. 2015).
- ``factory``: ``create(name, **kw)``, the one way the study names and builds a net (see its table
  of names).
"""

from .blocks import BasicBlock, ShortcutA, SqueezeExcite
from .densenet import (
           DenseBlock,
           DenseLayer,
           DenseNetBC,
           DenseStageNet,
           PartialDenseBlock,
           dense_layer_params,
)
from .factory import cifar_name, cifar_resnet, create
from .resnet import CifarResNet, PreActBlock, ResidualStageNet
from .transformer import Encoder
from .unet import UNet

__all__ = ["create", "cifar_name", "BasicBlock", "ShortcutA", "SqueezeExcite", "CifarResNet",
           "cifar_resnet",
           "PreActBlock", "ResidualStageNet",
           "DenseLayer", "DenseBlock", "DenseStageNet", "dense_layer_params", "UNet", "Encoder",
           "DenseNetBC",
           "PartialDenseBlock"]
