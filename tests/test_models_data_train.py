import pandas as pd
import pytest
import torch

from skipanalysis import data, train
from skipanalysis.models import cifar_resnet
from skipanalysis.models.resnet import ShortcutA


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


def test_texture_data_deterministic():
    a = data.texture_classification(50, 8, seed=4)
    b = data.texture_classification(50, 8, seed=4)
    c = data.texture_classification(50, 8, seed=5)
    assert torch.equal(a.tensors[0], b.tensors[0]) and torch.equal(a.tensors[1], b.tensors[1])
    assert not torch.equal(a.tensors[0], c.tensors[0])
    assert sorted(a.tensors[1].bincount().tolist()) == [5] * 10


def test_bad_data_parameters():
    with pytest.raises(ValueError, match="n=0"):
        data.texture_classification(0)
    with pytest.raises(ValueError, match="image folder"):
        data.image_folder("/nonexistent/folder")


def test_cifar10_offline_error_names_the_file(tmp_path):
    with pytest.raises(RuntimeError, match="cifar-10-batches-py.*Fix:"):
        data.cifar10(root=tmp_path, download=False)


def test_same_seed_same_numbers_on_cpu():
    ds = data.texture_classification(96, 8, seed=0)
    cfg = train.TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=7, progress=False)
    runs = []
    for _ in range(2):
        train.seed_everything(7)  # the initialisation too
        runs.append(train.train(cifar_resnet(8), ds, cfg).history)
    pd.testing.assert_frame_equal(runs[0], runs[1])
    train.seed_everything(7)
    other = train.train(cifar_resnet(8), ds, train.TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=8,
                                                                  progress=False)).history
    assert not runs[0]["loss"].equals(other["loss"])


def test_divergence_is_recorded_not_raised():
    ds = data.texture_classification(64, 8, seed=0)
    res = train.train(cifar_resnet(8, "plain"), ds, train.TrainConfig(epochs=3, batch_size=16, lr=1e6,
                                                                      weight_decay=0, progress=False))
    assert res.diverged and res.final == {}
    assert len(res.history) >= 1


def test_schedule_values():
    cfg = train.TrainConfig(lr=1.0, schedule="step", milestones=(0.5,), warmup_steps=2)
    assert train.lr_at(0, 10, cfg) == 0.5 and train.lr_at(1, 10, cfg) == 1.0
    assert train.lr_at(4, 10, cfg) == 1.0 and train.lr_at(5, 10, cfg) == pytest.approx(0.1)
    cos = train.TrainConfig(lr=1.0, schedule="cosine")
    assert train.lr_at(0, 10, cos) == 1.0 and train.lr_at(5, 10, cos) == pytest.approx(0.5)


def test_bad_train_config():
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        train.TrainConfig(optimizer="rmsprop").validate()
