"""Notebook 01's helpers: the identity construction, distances, gates, intervals, augmentation, the
full path."""


import numpy as np
import pandas as pd
import papermill as pm
import pytest
import torch
from PIL import Image

from skipanalysis import data, tasks, train
from skipanalysis.models import cifar_resnet
from skipanalysis.setting import Setting
from skipanalysis.studies import degradation as dg
from skipanalysis.studies import degradation_construction as dc

from conftest import ROOT


def _trained_plain(depth=8, steps=3):
    torch.manual_seed(0)
    ds = tasks.texture_classification(128, 8, seed=0)
    m = cifar_resnet(depth, "plain")
    train.train(m, ds, train.TrainConfig(epochs=steps / 4, batch_size=32, lr=0.05, progress=False))
    return m, ds


def test_identity_blocks_reproduce_the_shallow_net():
    shallow, ds = _trained_plain(8)
    deep = dc.deepen_with_identity(shallow, 20, ds.tensors[0][:100])
    assert len(deep.blocks) == 9 and sum(1 for _ in deep.parameters()) > sum(
        1 for _ in shallow.parameters())
    assert dg.max_output_difference(shallow, deep, ds.tensors[0][100:]) < 1e-5
    with pytest.raises(ValueError, match="plain"):
        dc.deepen_with_identity(cifar_resnet(8, "residual"), 20, ds.tensors[0][:10])


def test_block_distances_zero_for_identity_residual_blocks():
    m = cifar_resnet(14, "residual")
    # zero the branch: every block becomes relu(shortcut(h)) == shortcut(h) on h >= 0
    for b in m.blocks:
        torch.nn.init.zeros_(b.bn2.weight)
    d = dg.block_distances(m, torch.randn(4, 3, 8, 8))
    assert d.to_identity.max() < 1e-6 and (d.to_zero - 1).abs().max() < 1e-6


def test_closed_highway_gates_carry_the_input():
    m = cifar_resnet(8, "highway", gate_bias=-50.0)
    ref = cifar_resnet(8, "residual")
    ref.load_state_dict({k: v for k, v in m.state_dict().items() if "gate" not in k})
    for b in ref.blocks:
        torch.nn.init.zeros_(b.bn2.weight)
        torch.nn.init.zeros_(b.bn2.bias)
    x = torch.randn(2, 3, 8, 8)
    m.eval(), ref.eval()
    assert torch.allclose(m(x), ref(x), atol=1e-5)
    assert dg.gate_openness(m, x).gate_mean.max() < 1e-10


def test_random_crop_flip():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(train.random_crop_flip(x, g, pad=0)[0], x[0]) or \
        torch.equal(train.random_crop_flip(x, g, pad=0)[0], x[0].flip(-1))
    many = torch.stack([train.random_crop_flip(x, g, pad=0)[0] for _ in range(20)])
    assert any(torch.equal(v, x[0].flip(-1)) for v in many) and any(torch.equal(v, x[0])
                                                                    for v in many)
    y = train.random_crop_flip(x, g, pad=2)
    assert y.shape == x.shape


@pytest.fixture()
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("cats", "dogs"):
        (tmp_path / c).mkdir()
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(
                tmp_path / c / f"{i}.png")
    return tmp_path


def test_folder_dataset_and_mean_subtraction(image_folder):
    tr, te = data.load_classification("folder", 16, 8, image_size=8, seed=0, path=image_folder)
    assert tr.tensors[0].shape == (16, 3, 8, 8) and set(tr.tensors[1].tolist()) <= {0, 1}
    assert tr.tensors[0].mean(0).abs().max() < 1e-5  # the per-pixel mean image was subtracted
    with pytest.raises(ValueError, match="holds only 24 images"):
        data.load_classification("folder", 20, 8, path=image_folder)


def test_full_profile_path_runs_on_an_image_folder(image_folder, tmp_path):
    """The notebook with the full profile's recipe (step schedule, warm-up, augmentation) on a tiny
    folder."""
    out = tmp_path / "out.ipynb"
    params = {"profile": "smoke", "device": "cpu", "report_dir": str(tmp_path / "reports"),
              "dataset": "folder",
              "data_path": str(image_folder), "n_train": 14, "n_test": 10, "image_size": 8,
              "depths": [8, 14],
              "seeds": 2, "highway_seeds": 2, "epochs": 1.0, "batch_size": 8, "lrs": [0.1],
              "schedule": "step",
              "warmup_steps": 1, "warmup_min_depth": 14, "augment": True, "construct_epochs": 0.5,
              "eval_points": 1}
    pm.execute_notebook(str(ROOT / "notebooks" / "01_degradation.ipynb"), str(out),
                        parameters=params,
                        cwd=str(ROOT / "notebooks"), progress_bar=False, kernel_name="python3")
    assert (tmp_path / "reports" / "claims" / "01_degradation.json").exists()


def test_depth_study_keeps_each_kind_at_its_best_rate():
    """A rate far too small cannot win the grid; the kept rows carry convergence records."""
    ds = tasks.texture_classification(96, 8, seed=0)
    cfg = train.TrainConfig(epochs=3, batch_size=32, progress=False)
    _, final, models = dg.depth_study(dg.DepthRuns(("residual",), (8,), (0, 1), (1e-6, 0.05)),
                                      Setting(ds, ds, cfg))
    kept = final[final.kept]
    assert kept.lr.tolist() == [0.05, 0.05] and len(final) == 4 and set(models) == {
        ("residual", 8, 0),
                                                                                     ("residual", 8,
                                                                                      1)}
    tried = final[~final.kept].set_index("lr")  # the selection seed's two runs
    assert tried.train_err[1e-6] > tried.train_err[0.05]
    assert {"converged", "late_share"} <= set(final.columns)


def test_he_initialisation_scale_and_the_plain56_gradient_explosion():
    """He init (fan_out, ReLU) draws a 3x3 CxC kernel with variance 2/(9C): E||W||^2 = 9*C*C *
    2/(9C) = 2C, while the Dirac (identity) kernel has ||I||^2 = C, so ||W|| / ||I|| is sqrt(2) at
    initialisation (hand-worked).

    Why the trained plain-56 kernels end tens of times the Dirac norm: with batch norm, a deep plain
    net's gradients *explode* towards the input at initialisation (Yang et al. 2019), so the first
    SGD steps inflate the early kernels; batch norm makes the loss blind to a kernel's scale, so the
    inflated kernels then get tiny effective steps and freeze. The first block's gradient is orders
    of magnitude larger in plain-56 than in plain-20 or residual-56.
    """
    torch.manual_seed(0)
    rel = []
    for block in cifar_resnet(56, "plain").blocks:
        w = block.conv2.weight
        dirac = torch.zeros_like(w)
        torch.nn.init.dirac_(dirac)
        rel.append((w.norm() / dirac.norm()).item())
    assert np.mean(rel) == pytest.approx(np.sqrt(2), rel=0.02)

    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 10, (32,))
    first = {}
    for depth, kind in ((20, "plain"), (56, "plain"), (56, "residual")):
        train.seed_everything(0)
        m = cifar_resnet(depth, kind).train()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        grads = [b.conv2.weight.grad.norm().item() for b in (m.blocks[0], m.blocks[-1])]
        first[(kind, depth)] = grads[0] / grads[1]
    assert first[("plain", 56)] > 100 * first[("plain", 20)]
    assert first[("plain", 56)] > 100 * first[("residual", 56)]


def verdicts(final, longer=None):
    """D1, D2 and D5's verdicts from ``depth_claims`` (shallow 20, deep 56, chance 0.9, margin
    0.02)."""
    return {cid: f.decision.verdict for cid,
            f in dg.depth_claims(final, 20, 56, 0.9, 0.02, longer).items()}


def test_summaries_pair_arms_by_seed_and_decide_d1_d2_d5():
    rows = []
    wobble = [0.0, 0.01, -0.01, 0.005, -0.005]
    means = {("plain", 20): 0.10, ("plain", 56): 0.30, ("residual", 20): 0.05,
             ("residual", 56): 0.045,
             ("highway", 56): 0.20}
    for (kind, depth), m in means.items():
        for s in (4, 2, 0, 3, 1):  # out of order: arms() must sort by seed
            rows.append(
                {"kind": kind, "depth": depth, "seed": s, "lr": 0.1, "train_err": m + wobble[s],
                         "test_err": m + 0.05, "converged": True, "diverged": False, "kept": True})
    final = pd.DataFrame(rows)
    assert dg.arms(final)[("plain", 20)].seed.tolist() == [0, 1, 2, 3, 4]
    summary = dg.summarize(final).set_index(["kind", "depth"])
    assert summary.loc[("plain", 56), "mean"] == pytest.approx(0.30) and summary.loc[(
        "plain", 56), "converged"] == 5
    longer = final[(final.kind == "plain") & (final.depth == 56)].assign(
        train_err=lambda f: f.train_err - 0.05)
    decided = verdicts(final, longer)
    # plain-56 worse than plain-20 on every seed, still at twice the budget; residual-56 within 0.02
    # of residual-20
    # and far below plain-56; highway-56 clearly better than plain-56 but residual-56 non-inferior
    # to it
    assert decided == {"D1": "supported", "D2": "supported", "D5": "supported"}
    assert verdicts(final)["D1"] == "inconclusive"
    # the deep plain net's failure to fit is the phenomenon: its convergence gates none of D1, D2,
    # D5
    final.loc[(final.kind == "plain") & (final.depth == 56), "converged"] = False
    assert verdicts(final, longer)["D2"] == "supported"
    # but an unconverged residual net of any depth leaves D1 and D2 open
    final.loc[(final.kind == "residual") & (final.depth == 20) & (
        final.seed == 3), "converged"] = False
    assert {cid: v for cid, v in verdicts(final, longer).items() if cid != "D5"} == \
        {"D1": "inconclusive", "D2": "inconclusive"}
    final.loc[final.kind == "highway", "converged"] = False
    assert verdicts(final)["D5"] == "inconclusive"
    heads = {cid: f.headline for cid, f in dg.depth_claims(final, 20, 56, 0.9, 0.02).items()}
    assert "never left chance" not in heads["D1"]
    # a plain-56 stuck at chance
    final.loc[(final.kind == "plain") & (final.depth == 56), "train_err"] = 0.89
    found = dg.depth_claims(final, 20, 56, 0.9, 0.02)["D1"]
    d1, head = found.decision, found.headline
    assert "plain-56 never left chance (90%)" in head and d1.verdict != "supported"
