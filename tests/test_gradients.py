"""skipanalysis.studies.gradient_flow and measure.probes: gradient probes, shattering, lesions and
paths, the stored G5 and initialisation tables."""

import copy
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from skipanalysis import tasks, train
from skipanalysis.measure import probes
from skipanalysis.models import cifar_resnet
from skipanalysis.models.resnet import SkipEveryNet
from skipanalysis.setting import Setting
from skipanalysis.studies import gradient_flow as gr
from skipanalysis.studies import gradient_flow_claims as gfc
from skipanalysis.studies import gradient_flow_lesions as gfl


def _identity_residual(depth=14):
    m = cifar_resnet(depth, "residual")
    for b in m.blocks:  # zero every branch: each block is relu(shortcut(x)) = shortcut(x) on x >= 0
        nn.init.zeros_(b.bn2.weight)
        nn.init.zeros_(b.bn2.bias)
    return m.eval()


def test_recorded_gradients_equal_the_analytic_ones_on_a_two_layer_linear_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.Conv2d(1, 2, 1, bias=False),
                        nn.Flatten())
    w1, (u, v) = net[0].weight.item(), net[1].weight.flatten().tolist()
    x = torch.randn(6, 1, 1, 1)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    # by hand: z_n = (u, v) * w1 * x_n, dL/dz_n = (softmax(z_n) - e_y) / N
    xs = x.flatten().double()
    z = torch.stack([u * w1 * xs, v * w1 * xs], 1)
    dz = (torch.softmax(z, 1) - F.one_hot(y, 2).double()) / len(y)
    g_w1 = (dz[:, 0] * u * xs + dz[:, 1] * v * xs).sum().abs().item()
    g_w2 = math.hypot((dz[:, 0] * w1 * xs).sum().item(), (dz[:, 1] * w1 * xs).sum().item())
    df = probes.conv_grad_norms(net, TensorDataset(x, y), n_batches=1, batch_size=6)
    assert df.grad_norm.tolist() == pytest.approx([g_w1, g_w2], rel=1e-5)


def test_probe_reports_rms_and_leaves_the_model_untouched():
    torch.manual_seed(0)
    m = cifar_resnet(8, "plain")
    ds = tasks.texture_classification(32, 8, seed=0)
    m.eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    df = probes.conv_grad_norms(m, ds, n_batches=2, batch_size=16)
    assert not m.training and all(p.grad is None for p in m.parameters())
    # BN running statistics restored
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert df.grad_rms.tolist() == pytest.approx((df.grad_norm / np.sqrt(df.numel)).tolist())
    assert df.numel.iloc[0] == 16 * 3 * 9  # the stem: 16 filters of 3 x 3 x 3
    # early/late ratio by hand on a made-up profile: mean(1, 2, 3) / mean(4, 5, 6) = 2 / 5
    prof = pd.DataFrame({"layer": range(1, 7), "grad_rms": [1, 2, 3, 4, 5, 6]})
    assert probes.early_late_ratio(prof) == pytest.approx(0.4)


def test_probing_during_training_does_not_change_the_training():
    ds = tasks.texture_classification(64, 8, seed=3)
    cfg = train.TrainConfig(epochs=2, batch_size=16, lr=0.05, progress=False, final_eval=False)
    torch.manual_seed(0)
    a = cifar_resnet(8, "plain")
    b = copy.deepcopy(a)
    train.train(a, ds, cfg)
    probe = gr.ProbeDuringTraining(b, ds, [0, 4], 1, 16, "cpu")
    train.train(b, ds, cfg, augment=probe)
    assert sorted(probe.profiles) == [0, 4] and probe.step == gr.total_steps(len(ds), cfg) == 8
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_train_study_keeps_the_best_rate_and_probes_three_points():
    ds = tasks.texture_classification(48, 8, seed=4)
    cfg = train.TrainConfig(epochs=1, batch_size=16, progress=False)
    plain8 = gr.ProbedTraining({"plain": gr.net_spec("plain", 8)}, [0, 1], [0.01, 0.05], 1, 16)
    setting = Setting(ds, None, cfg)
    runs, prof = gr.train_study(replace(plain8, lr_choice="first"), setting)
    assert len(runs) == 3 and runs.kept.sum() == 2 and runs[runs.kept].lr.nunique() == 1
    each, _ = gr.train_study(replace(plain8, halfway=False, lr_choice="each"), setting)
    assert len(each) == 4 and each.kept.sum() == 2  # every seed tries every rate and keeps one
    for _, g in each.groupby("seed"):  # the kept run is the one with the lower training error
        assert g[g.kept].train_err.iloc[0] == g.train_err.min()
    assert each[each.kept].train_err.tolist() == runs[runs.kept & (
        runs.seed == 0)].train_err.tolist() + \
        [each[(each.seed == 1)].train_err.min()]
    assert set(prof.point) == {"init", "half-way", "end"} and set(prof.seed) == {0, 1}
    table = gfc.run_table(runs, prof)
    assert {"early_late_init", "early_late_half-way", "early_late_end"} <= set(
        table.columns) and len(table) == 2
    # the default: a selection seed (10,000) outside the sample tries both rates; both compared
    # seeds are kept
    held, _ = gr.train_study(replace(plain8, halfway=False), setting)
    selection = held[held.role == "selection"]
    assert selection.seed.tolist() == [10_000] * 2 and not selection.kept.any()
    assert held[held.kept].seed.tolist() == [0, 1] and held[held.kept].lr.nunique() == 1


def test_train_study_through_a_store_trains_once_and_gives_the_same_profiles(tmp_path, monkeypatch):
    from skipanalysis import runs as rs

    ds = tasks.texture_classification(48, 8, seed=4)
    cfg = train.TrainConfig(epochs=1, batch_size=16, progress=False)
    calls, real = [], train.train
    monkeypatch.setattr(gr.tr, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    store = rs.RunStore(tmp_path / "store")
    design = gr.ProbedTraining(gr.sweep_nets(4, [0, 2], width=4, growth=4), [0, 1], [0.01, 0.05], 1,
                               16,
                               lr_choice="first")
    study = lambda: gr.train_study(design, Setting(ds, None, cfg, store=store))  # noqa: E731
    r1, p1 = study()
    # 3 nets x 2 rates on seed 0, then seed 1 at each net's kept rate
    assert len(calls) == 3 * 2 + 3
    r2, p2 = study()
    assert len(calls) == 9
    pd.testing.assert_frame_equal(r1, r2)
    pd.testing.assert_frame_equal(p1, p2)
    assert list(r1.family.unique()) == ["plain", "every 2", "dense"]


def test_shattering_study_is_paired_and_repeatable():
    ds = tasks.texture_classification(16, 8, seed=5)
    a = gr.shattering_study(["plain", "residual"], [8, 14], [0, 1], ds, n_points=8)
    b = gr.shattering_study(["plain", "residual"], [8, 14], [0, 1], ds, n_points=8)
    assert len(a) == 8 and a.correlation.tolist() == b.correlation.tolist()
    assert a.correlation.between(-1, 1).all()


def test_lesion_of_an_identity_block_changes_nothing():
    m = _identity_residual()
    ds = tasks.texture_classification(40, 8, seed=0)
    base = probes.error_with_lesions(m, ds, [])
    x = ds.tensors[0]
    with torch.no_grad():
        ref = m(x)
    for i in range(len(m.blocks)):
        assert probes.error_with_lesions(m, ds, [i]) == base
    assert isinstance(m.blocks[0], type(m.blocks[1]))  # restored
    with torch.no_grad():
        assert torch.allclose(m(x), ref)


@pytest.mark.parametrize("kind", ["residual", "plain"])
def test_single_lesions_from_kept_block_inputs_equal_whole_lesioned_passes(kind):
    torch.manual_seed(3)
    m = cifar_resnet(14, kind)  # random weights: every lesion changes some predictions
    ds = tasks.texture_classification(70, 8, seed=2)
    fast = probes.single_lesions(m, ds)  # the batches of error_with_lesions (train.evaluate's)
    slow = [probes.error_with_lesions(m, ds, [])] + [probes.error_with_lesions(m, ds,
                                                                               [i])
                                                     for i in range(len(m.blocks))]
    assert fast.block.tolist() == list(range(len(m.blocks) + 1))
    assert fast.err.tolist() == slow and len(set(slow)) > 1
    # three batches, one short
    assert probes.single_lesions(m, ds, batch_size=32).err.tolist() == pytest.approx(slow)
    assert m.training  # the model's mode is restored


def test_lesion_damage_of_identity_blocks_is_zero_and_path_length_by_hand():
    m = _identity_residual()
    x = tasks.texture_classification(40, 8, seed=0).tensors[0]
    with torch.no_grad():
        y = m(x).argmax(1)
    ds = TensorDataset(x, y)  # labels the intact net gets right: intact error 0
    les = gfl.lesion_study({("residual", 0): m}, ds, chance=0.9)
    assert len(les) == len(m.blocks) and (les.base_err == 0).all() and (les.damage == 0).all()
    paths = pd.DataFrame(
        {"seed": [0, 0, 1, 1], "length": [0, 1, 0, 1], "share_of_grad": [0.5, 0.5, 0.25, 0.75]})
    assert gfc.mean_path_lengths(paths).tolist() == [0.5, 0.75]


def test_path_gradients_all_through_shortcuts_when_branches_are_zero():
    m = _identity_residual(14)
    ds = tasks.texture_classification(16, 8, seed=1)
    df = probes.path_gradients(m, ds.tensors[0], ds.tensors[1], samples=2)
    n = len(m.blocks)
    assert list(df.paths) == [math.comb(n, k) for k in range(n + 1)]
    assert df.share_of_paths.sum() == pytest.approx(1)
    assert (df.share_of_grad.iloc[0] == pytest.approx(1)
            and df.grad_per_path.iloc[1:].abs().max() < 1e-12)


def test_linear_model_gradients_do_not_shatter():
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    x0, d = torch.randn(3, 8, 8), torch.randn(3, 8, 8)
    assert probes.neighbour_correlation(probes.line_gradients(lin, x0, d, 16)) == pytest.approx(
        1, abs=1e-6)


def test_skip_every_net():
    with pytest.raises(ValueError, match="every=5"):
        SkipEveryNet(8, 12, 5)
    assert SkipEveryNet(8, 12, 3)(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_g5_measurements_through_a_store_are_made_once_and_match_the_direct_ones(tmp_path,
                                                                                 monkeypatch):
    from skipanalysis import runs as rs

    torch.manual_seed(0)
    nets = {(f, s): cifar_resnet(14, f).eval() for f in ("plain", "residual") for s in (0, 1)}
    ds = tasks.texture_classification(16, 8, seed=2)
    calls, real = [], gfl.lesion_study
    monkeypatch.setattr(gfl, "lesion_study", lambda *a, **k: calls.append(1) or real(*a, **k))
    store = rs.RunStore(tmp_path / "store")
    design = gfl.Lesioning(0.9, 0, 2, max_k=2, draws=2, path_images=8)
    # the nets are measured on setting.test
    setting = Setting(ds, ds, train.TrainConfig(), store=store)
    a = gfl.g5_measurements(nets, design, setting)
    b = gfl.g5_measurements(nets, design, setting)
    assert len(calls) == 1
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y)
    direct = real(nets, ds, 0.9)
    pd.testing.assert_frame_equal(a[0], direct.reset_index(drop=True), check_dtype=False)
    assert set(a[1].family) == {"plain", "residual"} and sorted(a[2].seed.unique()) == [0, 1]


def test_tables_at_initialisation_through_a_store_are_measured_once(tmp_path, monkeypatch):
    from skipanalysis import runs as rs

    ds = tasks.texture_classification(16, 8, seed=2)
    store = rs.RunStore(tmp_path / "store")
    args = dict(families=["plain", "residual"], depths=[8], seeds=[0, 1], n_points=8)
    # measured at initialisation: no recipe used
    setting = Setting(ds, None, train.TrainConfig(), store=store)
    a = gr.measured(gr.Shattering(**args), setting)
    # the same table as measured directly
    pd.testing.assert_frame_equal(a, gr.shattering_study(data=ds, **args))
    (record,) = store.root.glob("*/*/record.json")
    # a second measurement would save a new record (a new date); a load marks its mtime
    written = record.read_bytes()
    pd.testing.assert_frame_equal(gr.measured(gr.Shattering(**args), setting), a)
    # loaded
    assert record.read_bytes() == written and len(list(store.root.glob("*/*/record.json"))) == 1
    init = gr.measured(
        gr.InitProfiles(["plain"], [8], range(2), (True,), grad_batches=1, batch_size=8), setting)
    assert set(init.seed) == {0, 1} and (init.step == 0).all()


def test_g4_claim_pairs_the_families_by_seed_whatever_the_row_order():
    import pandas as pd

    rows = [{"family": f, "seed": s, "early_late_end": base * (1 + 0.01 * s), "converged": True}
            for f, base in (("dense", 8.0), ("residual", 2.0), ("plain", 1.0))
            for s in (3, 1, 4, 0, 2)]
    found = gfc.g4_claim(pd.DataFrame(rows).sample(frac=1, random_state=0), 20)
    d, headline = found.decision, found.headline
    # per seed, log10(dense / residual) = log10(4) exactly: a zero-width paired interval at 0.602
    # rounded to 4 places
    assert d.numbers["dense_minus_residual_log10"]["estimate"] == pytest.approx(0.60206, abs=1e-4)
    # geometric mean of 8 x 1.00..1.04
    assert d.verdict == "supported" and "8.16 (dense)" in headline
