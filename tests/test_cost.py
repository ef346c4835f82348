"""Notebook 04's counters against hand-worked numbers and against each other."""

import pytest
import torch
from torch import nn

from skipanalysis import cost
from skipanalysis.models import DenseBlock


def test_conv_and_linear_flops_by_hand():
    conv = nn.Conv2d(3, 8, 3, stride=1, padding=1, bias=False)
    x = torch.randn(1, 3, 10, 10)
    macs = 8 * 10 * 10 * 3 * 3 * 3  # out channels x positions x (in channels x kernel area)
    assert cost.conv_macs(3, 8, 3, 10, 10) == macs == 21600
    assert cost.fvcore_flops(conv, x)["total"] == macs
    assert cost.torch_flops(conv, x) == 2 * macs
    lin = nn.Linear(20, 7)
    v = torch.randn(5, 20)
    assert cost.fvcore_flops(lin, v)["total"] == 5 * 20 * 7
    assert cost.torch_flops(lin, v) == 2 * 5 * 20 * 7


def test_counters_agree_up_to_factor_two_on_convs_and_matmuls():
    m = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 4, 1), nn.Flatten(),
                      nn.Linear(4 * 6 * 6, 5))
    x = torch.randn(2, 3, 8, 8)
    fv = cost.fvcore_flops(m, x)
    assert cost.torch_flops(m, x) == pytest.approx(2 * (fv["conv"] + fv["linear"]))
    assert fv["total"] > fv["conv"] + fv["linear"]  # fvcore also counts batch norm


def test_reference_parameter_counts():
    assert cost.count_params(cost.torchvision_model("resnet50")) == 25_557_032
    assert cost.count_params(cost.torchvision_model("densenet121")) == 7_978_856


def test_saved_bytes_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = torch.randn(5, 4)
    # Linear 1 saves its input (5x4); ReLU saves its output (5x3), which Linear 2 saves again (same storage,
    # counted once); weights are parameters and do not count. float32: (20 + 15) * 4 bytes.
    assert cost.saved_bytes(net, x) == (20 + 15) * 4


def test_checkpointed_block_matches_plain_block():
    torch.manual_seed(0)
    plain = DenseBlock(6, 4, 3).double()
    eff = cost.EfficientDenseBlock(6, 4, 3).double()
    eff.load_state_dict(plain.state_dict())
    x1 = torch.randn(2, 6, 5, 5, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = plain(x1), eff(x2)
    assert torch.allclose(y1, y2, atol=1e-12)
    y1.square().sum().backward()
    y2.square().sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-10)
    for (n, p), q in zip(plain.named_parameters(), eff.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-10), n
    x = torch.randn(4, 6, 8, 8, dtype=torch.float64)
    assert cost.saved_bytes(eff, x) < cost.saved_bytes(plain, x)


def test_poly_fits_recovers_exact_curves():
    xs = [1, 2, 3, 4, 5]
    lin = cost.poly_fits(xs, [3 * v + 2 for v in xs])
    assert lin["linear_r2"] == pytest.approx(1) and abs(lin["quadratic_share_at_max"]) < 1e-9
    quad = cost.poly_fits(xs, [v * v for v in xs])
    assert quad["quadratic_share_at_max"] == pytest.approx(1) and quad["linear_r2"] < 1


def test_hardware_file_round_trip(tmp_path):
    fp = {"device": "cpu", "cpu_model": "Test CPU @ 3GHz", "torch_threads": 4, "date": "2026-01-01T00:00:00+00:00"}
    numbers = {"peaks": {"flops": 1e11, "bytes_per_s": 2e10}, "timing": [{"model": "resnet50", "median_s": 0.1}]}
    path = cost.write_hardware_file(tmp_path, fp, numbers, "abc123", {"torch": "x"})
    assert path.name == "cpu-test-cpu-3ghz-4t.json"
    loaded = cost.load_hardware_files(tmp_path)
    assert loaded["cpu-test-cpu-3ghz-4t"]["numbers"] == numbers
    assert loaded["cpu-test-cpu-3ghz-4t"]["git_commit"] == "abc123"


def test_time_it_reports_median_and_iqr():
    r = cost.time_it(lambda: sum(range(1000)), torch.device("cpu"), 0.05)
    assert r["runs"] >= 5 and r["median_s"] > 0 and r["iqr_s"] >= 0
