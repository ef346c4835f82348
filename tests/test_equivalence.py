"""Notebook 03's helpers against hand-worked values and independent formulas."""

import math

import pytest
import torch
import torch.nn.functional as F

from skipanalysis.models import (
    DenseBlock,
    DenseLayer,
    DenseStageNet,
    ResidualStageNet,
    create,
    dense_layer_params,
)
from skipanalysis.setting import Setting
from skipanalysis.studies import equivalence as eq


def test_concat_identity_by_hand():
    # 1x1 convolution, two one-channel pieces: out = 2*a + 3*b + bias, worked by hand.
    a = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
    b = torch.tensor([[[[10.0, 0.0], [-1.0, 5.0]]]], dtype=torch.float64)
    w = torch.tensor([[[[2.0]], [[3.0]]]], dtype=torch.float64)
    bias = torch.tensor([0.5], dtype=torch.float64)
    whole, parts = eq.conv_concat_split([a, b], w, bias, stride=1, padding=0)
    expected = torch.tensor([[[[32.5, 4.5], [3.5, 23.5]]]], dtype=torch.float64)
    assert torch.equal(whole, expected)
    assert torch.allclose(parts, expected, atol=0, rtol=0)


def test_concat_identity_random_shapes_float64():
    df = eq.conv_concat_trials(60, seed=3)
    assert len(df) == 60 and df.stride.nunique() > 1 and df.padding.nunique() > 1
    assert df.max_abs_err.max() < 1e-10


def test_concat_split_detects_wrong_slicing():
    # The check must be able to fail: swapping the weight slices changes the result.
    g = torch.Generator().manual_seed(0)
    pieces = [torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64) for _ in range(2)]
    w = torch.randn(3, 4, 3, 3, generator=g, dtype=torch.float64)
    whole = F.conv2d(torch.cat(pieces, 1), w)
    swapped = F.conv2d(pieces[0], w[:, 2:]) + F.conv2d(pieces[1], w[:, :2])
    assert (whole - swapped).abs().max() > 1e-3


def test_tied_weights_equal_resnet_layer():
    assert eq.tied_dense_equivalence(n_inputs=5, seed=1) < 1e-10


@pytest.mark.parametrize("m", [1, 2, 4, 8])
def test_tied_fit_residual_matches_formula(m):
    measured = eq.best_tied_residual(m, channels=32, out_ch=32, n_samples=20000, seed=2)
    expected = math.sqrt(1 - 1 / m)
    assert measured == pytest.approx(expected, abs=0.03 if m > 1 else 1e-8)


@pytest.mark.parametrize("L", [1, 2, 5, 12])
def test_dense_connections_count(L):
    census = eq.dense_connection_census(L, growth=4)
    assert census.connections.sum() == L * (L + 1) // 2
    assert (census.new_maps == 4).all()
    assert list(census.in_channels) == [8 + 4 * i for i in range(L)]
    assert (census.params == census.params_formula).all()


def test_dense_layer_params_by_hand():
    # in 10, k 2, bottleneck 8: BN(10)=20, 1x1 10*8=80, BN(8)=16, 3x3 8*9*2=144 -> 260
    assert dense_layer_params(10, 2, 4) == 260
    assert sum(p.numel() for p in DenseLayer(10, 2, 4).parameters()) == 260


def test_merge_check_values():
    m = eq.merge_check()
    assert m["residual_add_max_dev"] < 1e-12
    assert m["dense_prefix_max_dev"] == 0
    assert m["dense_out_channels"] == m["dense_expected_channels"]
    torch.manual_seed(123)  # whatever ran before: the same seed gives the same numbers
    assert eq.merge_check() == m


def test_ridge_r2_exact_and_independent():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 5, generator=g, dtype=torch.float64)
    w = torch.randn(5, 3, generator=g, dtype=torch.float64)
    assert eq.ridge_r2(x[:1000], x[:1000] @ w, x[1000:], x[1000:] @ w,
                       alpha=1e-8) == pytest.approx(1, abs=1e-6)
    noise = torch.randn(2000, 3, generator=g, dtype=torch.float64)
    assert abs(eq.ridge_r2(x[:1000], noise[:1000], x[1000:], noise[1000:])) < 0.02


def test_sources_reproduce_last_layer_input():
    x = torch.randn(3, 3, 8, 8)
    for model, sources, last in [
        (ResidualStageNet(8, 4), eq.residual_sources, lambda m: m.blocks[-1]),
                                 (DenseStageNet(4, 4), eq.dense_sources,
                                  lambda m: m.block.layers[-1])]:
        model.eval()
        seen = {}
        h = last(model).register_forward_pre_hook(lambda mod, args: seen.setdefault(  # noqa: B023
            "x", args[0] if isinstance(args[0], torch.Tensor) else list(args[0])))
        with torch.no_grad():
            model(x)
        h.remove()
        srcs, inp = sources(model, x)
        real = seen["x"] if isinstance(seen["x"], torch.Tensor) else torch.cat(seen["x"], 1)
        assert torch.allclose(inp, real, atol=1e-5)
        assert len(srcs) == 4


def test_residual_input_is_the_sum_of_sources():
    model = ResidualStageNet(8, 5)
    srcs, inp = eq.residual_sources(model, torch.randn(2, 3, 8, 8))
    assert torch.allclose(sum(srcs), inp, atol=1e-5)


def test_dense_block_rejects_zero_layers():
    with pytest.raises(ValueError, match="n_layers"):
        DenseBlock(4, 0, 2)


def test_decodability_study_shapes_and_dense_recovery():
    from torch.utils.data import TensorDataset

    from skipanalysis import train

    g = torch.Generator().manual_seed(0)
    make = lambda n: TensorDataset(torch.randn(n, 3, 8, 8, generator=g),  # noqa: E731
                                   torch.randint(0, 3, (n,), generator=g))
    cfg = train.TrainConfig(epochs=1, batch_size=16, lr=0.01, progress=False)
    r2, runs = eq.decodability_study(eq.E5Design([0, 1], growth=2, n_blocks=3, n_probe=8),
                                     Setting(make(32), make(16), cfg))
    assert len(runs) == 4 and set(runs.model) == {"residual", "dense"} and set(runs.seed) == {0, 1}
    assert len(r2) == 2 * 2 * 2 * 3  # (model, state, seed) x (stem + 2 earlier layers)
    assert set(r2.state) == {"trained", "initialised"}
    # width-matched: the ResNet is as wide as the DenseNet's last input (stem 2k + 2 layers of k =
    # 4k = 8 channels)
    assert eq.matched_width(2, 3) == 8
    assert runs[runs.model == "residual"].params.iloc[0] == sum(
        p.numel() for p in create("preact-stage-3", width=8).parameters())
    # a dense source is a slice of the last input: recovered exactly, trained or not
    assert (r2[r2.model == "dense"].R2 > 0.999).all()
    # residual sources reach the last input only as terms of a sum: none is recovered exactly
    assert (r2[r2.model == "residual"].R2 < 1).all()


def test_decodability_baseline_is_the_untrained_net_of_the_same_seed():
    from torch.utils.data import TensorDataset

    from skipanalysis import train

    g = torch.Generator().manual_seed(0)
    make = lambda n: TensorDataset(torch.randn(n, 3, 8, 8, generator=g),  # noqa: E731
                                   torch.randint(0, 3, (n,), generator=g))
    tr_set, te_set = make(32), make(16)
    cfg = train.TrainConfig(epochs=1, batch_size=16, lr=0.1, progress=False)
    r2, _ = eq.decodability_study(eq.E5Design([3], growth=2, n_blocks=3, n_probe=8),
                                  Setting(tr_set, te_set, cfg))
    # by hand: the net as seed 3 initialises it, the probe images seed 3 draws, the same decoder
    train.seed_everything(3)
    net = create("preact-stage-3", width=8)
    pick = torch.Generator().manual_seed(3)
    fit, held = torch.randperm(32, generator=pick)[:8], torch.randperm(16, generator=pick)[:8]
    (s_fit, last_fit), (s_eval, last_eval) = (eq.residual_sources(net, d.tensors[0][i])
                                              for d, i in ((tr_set, fit), (te_set, held)))
    expected = eq.decodability(s_fit, last_fit, s_eval, last_eval)
    res = r2[r2.model == "residual"].set_index(["state", "index"]).R2
    assert [res["initialised", i] for i in range(3)] == pytest.approx(expected, abs=1e-9)
    # training moved it
    assert [res["trained", i] for i in range(3)] != pytest.approx(expected, abs=1e-6)


def test_decodability_study_through_a_store_trains_once_and_decodes_the_same(tmp_path, monkeypatch):
    import pandas as pd
    from torch.utils.data import TensorDataset

    from skipanalysis import runs as rs
    from skipanalysis import train

    g = torch.Generator().manual_seed(0)
    make = lambda n: TensorDataset(torch.randn(n, 3, 8, 8, generator=g),  # noqa: E731
                                   torch.randint(0, 3, (n,), generator=g))
    tr_set, te_set = make(32), make(16)
    cfg = train.TrainConfig(epochs=1, batch_size=16, lr=0.01, progress=False)
    calls, real = [], train.train
    monkeypatch.setattr(train, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    store = rs.RunStore(tmp_path / "store")
    design, setting = eq.E5Design([0, 1], 2, 3, 8), Setting(tr_set, te_set, cfg, store=store)
    study = lambda: eq.decodability_study(design, setting)  # noqa: E731
    r2a, runs_a = study()
    assert len(calls) == 4
    r2b, runs_b = study()
    assert len(calls) == 4  # loaded with their weights: the same decoders, the same R^2
    pd.testing.assert_frame_equal(r2a, r2b)
    pd.testing.assert_frame_equal(runs_a, runs_b)


def test_e5_design_from_the_notebooks_parameters():
    p = {"seed": 2, "seeds": 3, "growth": 5, "n_blocks": 6, "n_probe": 64, "ridge_alpha": 1e-3,
         "epochs": 1}
    assert eq.E5Design.from_params(p) == eq.E5Design([2, 3, 4], growth=5, n_blocks=6, n_probe=64,
                                                     alpha=1e-3)
