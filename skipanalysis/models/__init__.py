"""The network families under study, one file each.

- ``resnet``: the CIFAR family of He et al. 2016 (depth 6n+2, plain or residual,
  option A shortcuts) and a pre-activation residual stage.
- ``densenet``: DenseNet-BC layers and blocks (Huang et al. 2017).
"""

from .densenet import DenseBlock, DenseLayer, DenseStageNet, dense_layer_params
from .resnet import CifarResNet, PreActBlock, ResidualStageNet, cifar_resnet

__all__ = ["CifarResNet", "cifar_resnet", "PreActBlock", "ResidualStageNet",
           "DenseLayer", "DenseBlock", "DenseStageNet", "dense_layer_params"]
