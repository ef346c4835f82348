"""skipanalysis.models: the CIFAR ResNets' depths, parameter counts and shortcuts."""

import pytest
import torch

from skipanalysis.models import cifar_resnet
from skipanalysis.models.blocks import ShortcutA


@pytest.mark.parametrize("depth", [7, 21, 0, 19])
def test_cifar_depth_must_be_6n_plus_2(depth):
    with pytest.raises(ValueError, match=f"depth={depth}.*6n\\+2"):
        cifar_resnet(depth)


@pytest.mark.parametrize("depth", [8, 20, 56])
def test_plain_and_residual_share_parameters(depth):
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(cifar_resnet(depth, "plain")) == count(cifar_resnet(depth, "residual"))


def test_resnet20_parameter_count_matches_paper():
    # He et al. 2016, Table 6: ResNet-20 has 0.27M parameters.
    n = sum(p.numel() for p in cifar_resnet(20).parameters())
    assert 0.26e6 < n < 0.28e6


def test_option_a_shortcut_shapes():
    s = ShortcutA(16, 32, 2)
    x = torch.randn(2, 16, 8, 8)
    y = s(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert y[:, :8].abs().sum() == 0 and y[:, 24:].abs().sum() == 0
