"""skipanalysis.models.create: one naming scheme for every net of the study, checked against
published counts."""

import ast
from pathlib import Path

import pytest
import torch

from skipanalysis import models
from skipanalysis.models import create

from conftest import ROOT


def count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("depth,millions",
                         [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7)])
def test_cifar_names_match_he_et_al_table6(depth, millions):
    # He et al. 2016, Table 6 gives the parameters of the CIFAR ResNets to two figures.
    n = count(create(f"resnet-{depth}"))
    assert round(n / 1e6, 2 if depth < 110 else 1) == millions
    assert count(create(f"plain-{depth}")) == n  # option A shortcuts have no parameters


def test_densenet_bc_100_matches_huang_et_al_table2():
    # Huang et al. 2017, Table 2: DenseNet-BC (L=100, k=12) has 0.8M parameters; L = 6N+4 with N =
    # 16.
    assert round(count(create("densenet-16")) / 1e6, 1) == 0.8
    assert count(create("csp-densenet-16")) < count(create("densenet-16"))


def test_every_form_builds_and_runs():
    x = torch.randn(2, 3, 16, 16)
    for name in ("plain-8", "resnet-8", "highway-8", "se-resnet-8", "densenet-2", "csp-densenet-2",
                 "preact-stage-2",
                 "dense-stage-2", "chain-4"):
        assert create(name, num_classes=7)(x).shape == (2, 7), name
    assert create("chain-4", every=2).every == 2
    assert create("unet-add", in_channels=3, depth=2, base=4)(torch.randn(1, 3, 16, 16)).shape == (
        1, 1, 16, 16)
    enc = create("encoder-post", vocab=5, seq_len=6, depth=1, d_model=8, n_heads=2, d_ff=8)
    assert enc(torch.randint(0, 5, (2, 6))).shape[:2] == (2, 6)
    assert count(create("tv:resnet50")) == 25_557_032  # torchvision's documented count
    assert create("highway-8", gate_bias=-3.0).blocks[0].gate.bias.mean().item() == -3.0


def test_kind_labels_round_trip():
    for kind in ("plain", "residual", "highway", "se-residual"):
        assert create(models.cifar_name(kind, 14)).kind == kind


@pytest.mark.parametrize("name,message", [
    ("vgg-16", "model 'vgg-16' is not allowed; use one of plain-D"),
    ("resnet-21", "depth=21 is not allowed: the CIFAR family needs depth = 6n\\+2"),
    ("tv:no_such_net", "torchvision.models has no 'no_such_net'"),
    ("unet-sum", "model 'unet-sum' is not allowed"),
])
def test_bad_names_are_one_line(name, message):
    with pytest.raises(ValueError, match=message):
        create(name)


def test_no_import_cycle_and_blocks_passed_in():
    # resnet.py builds whatever block it is given: it imports neither the highway nor the factory
    # module
    tree = ast.parse((ROOT / "skipanalysis" / "models" / "resnet.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "highway" not in imported and "factory" not in imported
    with pytest.raises(ValueError, match="needs its block class"):
        models.CifarResNet(8, "highway")
    # and no package module builds a net except through the factory (models/ itself aside)
    for path in (ROOT / "skipanalysis").glob("*.py"):
        src = path.read_text()
        for cls in ("cifar_resnet(", "DenseNetBC(", "UNet(", "Encoder(", "SkipEveryNet(",
                    "torchvision.models"):
            assert cls not in src, f"{Path(path).name} builds {cls} directly; use models.create"
