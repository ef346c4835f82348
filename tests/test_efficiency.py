"""Notebook 08's models and helpers."""

from dataclasses import replace

import pandas as pd
import pytest
import torch

from skipanalysis import data, tasks, train
from skipanalysis.measure import flops
from skipanalysis.models import DenseNetBC, PartialDenseBlock, cifar_resnet
from skipanalysis.models.densenet import dense_layer_params
from skipanalysis.setting import Setting
from skipanalysis.studies import param_efficiency as ef


def test_specs_build_and_bad_specs_are_named():
    for spec in ("resnet-8", "se-resnet-8", "densenet-2", "csp-densenet-2"):
        assert ef.build_model(spec)(torch.randn(2, 3, 12, 12)).shape == (2, 10)
    with pytest.raises(ValueError, match="model spec 'vgg-16' is not allowed"):
        ef.build_model("vgg-16")


def test_densenet_bc_parameter_count_by_hand():
    # one layer per block, k = 2, 1 input channel: sum the pieces by hand
    m = DenseNetBC(1, 2, num_classes=3, in_channels=1)
    stem = 1 * 4 * 9
    b1 = dense_layer_params(4, 2)            # 4 -> 6 channels
    t1 = 2 * 6 + 6 * 3                       # BN(6) + 1x1 6 -> 3
    b2 = dense_layer_params(3, 2)            # 3 -> 5
    t2 = 2 * 5 + 5 * 2                       # BN(5) + 1x1 5 -> 2
    b3 = dense_layer_params(2, 2)            # 2 -> 4
    head = 2 * 4 + 4 * 3 + 3                 # final BN(4) + linear 4 -> 3
    assert sum(p.numel() for p in m.parameters()) == stem + b1 + t1 + b2 + t2 + b3 + head


def test_partial_dense_block_passes_half_through():
    blk = PartialDenseBlock(8, 2, 4).eval()
    x = torch.randn(2, 8, 6, 6)
    out = blk(x)
    assert out.shape[1] == blk.out_ch == 4 + (4 + 2 * 4) // 2
    assert torch.equal(out[:, :4], x[:, :4])  # the bypassing half is untouched


def test_se_block_adds_few_parameters_and_starts_near_half_gate():
    base, se = cifar_resnet(8), cifar_resnet(8, "se-residual")
    extra = sum(p.numel() for p in se.parameters()) - sum(p.numel() for p in base.parameters())
    # one SE per block: widths 16, 32, 64 with reduction 4: 2*c*(c/4) weights + c/4 + c biases
    assert extra == sum(2 * c * (c // 4) + c // 4 + c for c in (16, 32, 64))


def test_subsample_is_class_balanced_and_seeded():
    tr, _ = data.train_test_split(tasks.texture_classification(120, 8, seed=0), 20)
    sub = ef.subsample(tr, 30, seed=1)
    assert len(sub) == 30 and torch.equal(sub.tensors[0], ef.subsample(tr, 30, seed=1).tensors[0])
    counts = torch.bincount(sub.tensors[1], minlength=10)
    assert counts.max() - counts.min() <= 1  # 10 classes, 3 each
    with pytest.raises(ValueError, match="exceeds"):
        ef.subsample(tr, 1000, 0)


def test_study_chooses_rates_on_validation_and_pairs_seeds():
    from skipanalysis.train import TrainConfig

    pool, te = data.train_test_split(tasks.texture_classification(90, 8, seed=0), 20)
    tr, val = data.train_test_split(pool, 20)
    cfg = TrainConfig(batch_size=8, progress=False)
    design = ef.Design(["resnet-8", "densenet-1"], ["resnet-8", "densenet-1"], [20], [0, 1],
                       [0.01, 0.05], steps=3,
                       lr_seeds=2)
    runs, grid = ef.study(design, Setting(tr, te, cfg, val=val))
    assert len(grid) == 8 and grid.groupby("model").kept.sum().tolist() == [2, 2]
    # the smallest rate within one standard error of the best mean
    for _, g in grid.groupby("model"):
        means = g.groupby("lr").val_err.mean()
        se = (means.min() * (1 - means.min()) / (len(val) * 2)) ** 0.5
        assert g[g.kept].lr.iloc[0] == means[means <= means.min() + se].index.min()
    # 2 models x 2 seeds on the full set + 2 models x 2 seeds on 20 images
    assert len(runs) == 8 and set(runs.n_train) == {20, 50}
    assert (runs.gap == runs.test_err - runs.train_err).all()
    assert ef.per_seed(runs, "resnet-8", 20, "seed") == [0, 1]
    # each model keeps its rate on every size and seed
    assert runs.groupby("model").lr.nunique().max() == 1
    assert len(ef.converged(runs, ["resnet-8"], 50)) == 2


def test_one_standard_error_rule_prefers_the_smaller_rate_on_a_tie(monkeypatch):
    val_err = {("m", 0.05): 0.60, ("m", 0.1): 0.595, ("n", 0.05): 0.65, ("n", 0.1): 0.60}

    def fake(config, train_set, val_set, test_set, device=None):
        spec, lr = config["name"], config["lr"]
        return {"model": spec, "lr": lr, "seed": config["seed"], "diverged": False,
                "val_err": val_err[(spec, lr)]}, None

    monkeypatch.setattr(ef, "train_run", fake)
    # n_val = 1000: one SE at 0.595 over 2 seeds = 0.011
    val = tasks.texture_classification(1000, 8, seed=0)
    design = ef.Design(["m", "n"], ["m", "n"], [], [0, 1], [0.1, 0.05], 1, lr_seeds=2)
    grid = ef.choose_lrs(design, Setting(None, None, train.TrainConfig(progress=False), val=val))
    kept = grid[grid.kept].groupby("model").lr.first().to_dict()
    assert kept == {"m": 0.05, "n": 0.1}  # m: 0.5 points apart is a tie; n: 5 points apart is not


def test_a_second_study_with_a_store_trains_nothing_and_gives_the_same_rows(tmp_path, monkeypatch):
    from skipanalysis import runs as rs

    pool, te = data.train_test_split(tasks.texture_classification(90, 8, seed=0), 20)
    tr_set, val = data.train_test_split(pool, 20)
    cfg = train.TrainConfig(batch_size=8, progress=False)
    calls, real = [], train.train
    monkeypatch.setattr(ef.tr, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    store = rs.RunStore(tmp_path / "store")
    design = ef.Design(["resnet-8", "densenet-1"], ["resnet-8"], [20], [0, 1], [0.01, 0.05], 3)
    setting = Setting(tr_set, te, cfg, store=store, val=val)
    first, grid1 = ef.study(design, setting)
    # 2 models x 2 rates on seed 0; seed 1 of both; the pair on 20 images x 2 seeds
    assert len(calls) == 4 + 2 + 2
    second, grid2 = ef.study(design, setting)
    assert len(calls) == 8
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(grid1, grid2)
    ef.study(replace(design, seeds=[0, 1, 2]), setting)  # a third seed: its runs alone
    assert len(calls) == 8 + 2 + 1


def test_the_matched_control_trains_at_every_size_beside_the_pair(monkeypatch):
    made = []

    def fake(config, train_set, val_set, test_set, device=None):
        made.append((config["name"], config["n_train"], config["seed"]))
        return {"model": config["name"], "n_train": config["n_train"] or 100,
                "seed": config["seed"],
                "lr": config["lr"],
                "diverged": False, "val_err": 0.5, "train_err": 0.1, "test_err": 0.5,
                "converged": True}, None

    monkeypatch.setattr(ef, "train_run", fake)
    tr_set = tasks.texture_classification(100, 8, seed=0)
    setting = Setting(tr_set, tr_set, train.TrainConfig(progress=False), val=tr_set)
    runs, grid = ef.study(
        ef.Design(["resnet-20", "densenet-4"], ["resnet-20", "densenet-4"], [20, 50], [0, 1, 2],
                                    [0.05], 5, lr_seeds=1, control="resnet-8"), setting)
    # the control gets its own rate too
    assert set(grid.model) == {"resnet-20", "densenet-4", "resnet-8"}
    for n in (20, 50):
        for m in ("resnet-20", "densenet-4", "resnet-8"):
            assert sorted(s for name, size, s in made if name == m and size == n) == [0, 1, 2]
    # every model and seed on the full set; three models x 3 seeds x 2 sizes
    assert len(made) == 3 * 3 + 2 * 3 * 3
    # the control already in the pair adds no runs
    made.clear()
    ef.study(ef.Design(["resnet-8", "densenet-1"], ["resnet-8", "densenet-1"], [20], [0], [0.05], 5,
                       lr_seeds=1,
                       control="resnet-8"), setting)
    assert len(made) == 2 + 2


def test_model_costs_count_what_a_second_library_counts_and_ratios_pair_rounds():

    costs = ef.model_costs(["resnet-8", "se-resnet-8"], 8, 4, "cpu", rounds=3, min_run_time=0.0)
    for m in ("resnet-8", "se-resnet-8"):
        model = ef.build_model(m)
        assert costs.loc[m, "params"] == sum(p.numel() for p in model.parameters())
        fv = flops.fvcore_flops(model, torch.zeros(1, 3, 8, 8))
        # torch.utils.flop_counter counts convolutions and matmuls, two FLOPs per multiply-add
        assert flops.torch_flops(model, torch.zeros(1, 3, 8, 8)) == pytest.approx(
            2 * (fv["conv"] + fv.get("linear",
                                                                                                           0)))
        assert costs.loc[m, "flops"] == fv["total"] and len(costs.loc[m, "step_times"]) == 3
    # ratios by hand: the time ratio is the median of per-round ratios, so a round slow for both
    # cancels
    fake = pd.DataFrame({"params": [100, 80], "flops": [10.0, 12.0], "step_s": [1.0, 1.0],
                         "step_times": [[1.0, 2.0, 1.0], [1.2, 2.4, 1.1]]}, index=["base", "hyb"])
    r = ef.cost_ratios(fake, "hyb", "base")
    assert (r["params"] == pytest.approx(0.8) and r["flops"] == pytest.approx(1.2)
            and r["time"] == pytest.approx(1.2))


def test_augmentation_is_named_in_the_config_and_reaches_training():
    ds = tasks.texture_classification(64, 8, seed=0)
    cfg = train.TrainConfig(batch_size=16, schedule="constant", lr=0.05, progress=False)
    ids = {"train_data": "t", "val_data": None, "test_data": "e"}
    plain = ef.run_config("resnet-8", None, 0, 0.05, 6, cfg, ids, False)
    # no augmentation adds no key: the stored runs of quick keep their keys
    assert "augment" not in plain
    aug = ef.run_config("resnet-8", None, 0, 0.05, 6, cfg, ids, False, augment="crop-flip")
    assert aug["augment"] == "crop-flip"
    with pytest.raises(ValueError, match="augment='cutout' is not allowed"):
        ef.run_config("resnet-8", None, 0, 0.05, 6, cfg, ids, False, augment="cutout")
    rows = [ef.train_run(c, ds, None, ds, "cpu")[0] for c in (plain, aug, aug)]
    assert rows[1]["train_err"] == rows[2]["train_err"]  # seeded: the same crops and flips again
    # the crops and flips changed what was learned
    assert rows[0]["test_err"] != rows[1]["test_err"]


def test_design_from_the_notebooks_parameters():
    p = {"seed": 1, "seeds": 3, "models": ["resnet-8", "resnet-20"],
         "pair": ["resnet-20", "densenet-4"],
         "hybrids": {"se-resnet-20": "resnet-20", "csp-densenet-4": "densenet-4"},
         "control": "resnet-8",
         "small_sizes": [250], "lrs": [0.1, 0.2], "steps": 200, "lr_seeds": 2, "augment": True,
         "n_train": 1000}
    d = ef.Design.from_params(p)
    assert d.specs == ["resnet-8", "resnet-20", "densenet-4", "se-resnet-20", "csp-densenet-4"]
    assert d.seeds == [1, 2, 3] and d.augment == "crop-flip" and d.control == "resnet-8"
    assert d.pair == ["resnet-20", "densenet-4"]
    assert (d.small_sizes, d.lrs, d.steps, d.lr_seeds) == ([250], [0.1, 0.2], 200, 2)
    assert d.trained == d.specs and d.scarce == ["resnet-20", "densenet-4", "resnet-8"]
    assert ef.Design.from_params({**p, "augment": False}).augment is None
