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


def test_bottleneck_resnet164_matches_the_papers_parameter_count_and_runs():
    """He et al. 2016 (Identity Mappings, Table 2) and Huang et al. 2017 (Table 2): ResNet-164 has
    1.7M parameters, DenseNet-BC-100 (k = 12) 0.8M; a pre-activation block's output is its input
    plus its branch."""
    from skipanalysis.models import create
    from skipanalysis.models.bottleneck import PreActBottleneck

    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    net = create("bottleneck-resnet-164")
    assert 1.65e6 < count(net) < 1.75e6 and len(net.blocks) == 54
    assert 0.75e6 < count(create("densenet-16")) < 0.85e6
    assert create("bottleneck-resnet-11")(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    block = PreActBottleneck(64, 16).eval()
    x = torch.randn(2, 64, 4, 4)
    with torch.no_grad():
        branch = block.conv3(
            torch.relu(block.bn3(block.conv2(torch.relu(block.bn2(block.conv1(torch.relu(
            block.bn1(x)))))))))
        assert torch.allclose(block(x), x + branch)
    with pytest.raises(ValueError,
                       match="depth=57 is not allowed for a bottleneck ResNet; use 9n\\+2"):
        create("bottleneck-resnet-57")
