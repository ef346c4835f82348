"""skipanalysis.landscape: filter-normalised directions, loss surfaces, curvature and the stored surfaces."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from skipanalysis import data
from skipanalysis import landscape as ls
from skipanalysis.models import cifar_resnet


def test_filter_normalisation_matches_the_model_filter_norms():
    m = cifar_resnet(8)
    d = ls.filter_normalized_direction(m, seed=3)
    for p, q in zip(m.parameters(), d):
        if p.dim() <= 1:
            assert q.abs().sum() == 0  # BN parameters and biases are zeroed
        else:
            assert torch.allclose(q.reshape(q.shape[0], -1).norm(dim=1), p.reshape(p.shape[0], -1).norm(dim=1),
                                  rtol=1e-5)


def test_loss_surface_centre_and_restoration():
    m = cifar_resnet(8).eval()
    ds = data.texture_classification(20, 8, seed=2)
    before = [p.clone() for p in m.parameters()]
    d1, d2 = ls.filter_normalized_direction(m, 0), ls.filter_normalized_direction(m, 1)
    z = ls.loss_surface(m, ds, d1, d2, np.array([-0.5, 0.0, 0.5]), np.array([0.0, 0.5]))
    with torch.no_grad():
        centre = F.cross_entropy(m(ds.tensors[0]), ds.tensors[1]).item()
    assert z.shape == (3, 2) and z[1, 0] == pytest.approx(centre, rel=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))


def test_curvature_on_analytic_surfaces():
    a = np.linspace(-1, 1, 21)
    X, Y = np.meshgrid(a, a, indexing="ij")
    bowl, saddle = ls.curvature(X ** 2 + Y ** 2, a[1] - a[0]), ls.curvature(X ** 2 - Y ** 2, a[1] - a[0])
    assert bowl["nonconvex_share"] == 0 and bowl["local_minima"] == 1 and bowl["median_negative_ratio"] == 0
    assert saddle["nonconvex_share"] == 1 and saddle["local_minima"] == 0
    assert ls.slice_convexity(a ** 2) == 1.0 and ls.slice_convexity(np.cos(6 * a)) < 0.7


def test_direction_pairs_are_shared_between_plain_and_residual_and_shares_are_averaged():
    torch.manual_seed(0)
    plain, res = cifar_resnet(8, "plain").eval(), cifar_resnet(8, "residual").eval()
    res.load_state_dict(plain.state_dict())  # same weights: the same draw gives the same direction
    for a, b in zip(ls.direction_pair(plain, 3, 1)[0], ls.direction_pair(res, 3, 1)[0]):
        assert torch.equal(a, b)
    assert not torch.equal(ls.direction_pair(plain, 3, 1)[0][0], ls.direction_pair(plain, 3, 0)[0][0])
    ds = data.texture_classification(8, 8, seed=1)
    table, surfaces = ls.measure_surfaces({("plain", 8, 3): plain, ("residual", 8, 3): res}, ds, 0.5, 5, pairs=2)
    assert len(table) == 4 and surfaces[("plain", 8, 3, 1)].shape == (5, 5)
    with torch.no_grad():
        centre = F.cross_entropy(plain(ds.tensors[0]), ds.tensors[1]).item()
    assert table.centre_loss.iloc[0] == pytest.approx(centre, rel=1e-5)
    shares = ls.seed_shares(table)
    assert shares.loc[3, ("plain", 8)] == pytest.approx(table[table.kind == "plain"].nonconvex_share.mean())


def test_surfaces_through_a_store_are_measured_once_per_net_and_grid(tmp_path, monkeypatch):
    from skipanalysis import runs as rs

    torch.manual_seed(0)
    nets = {("plain", 8, 0): cifar_resnet(8, "plain").eval(), ("residual", 8, 0): cifar_resnet(8, "residual").eval()}
    ds = data.texture_classification(8, 8, seed=1)
    calls, real = [], ls.loss_surface
    monkeypatch.setattr(ls, "loss_surface", lambda *a, **k: calls.append(1) or real(*a, **k))
    store = rs.RunStore(tmp_path / "store")
    t1, s1 = ls.measure_surfaces(nets, ds, 0.5, 5, 1, store=store)
    t2, s2 = ls.measure_surfaces(nets, ds, 0.5, 5, 1, store=store)
    assert len(calls) == 2 and all(np.array_equal(s1[k], s2[k]) for k in s1)
    pd.testing.assert_frame_equal(t1, t2)
    with torch.no_grad():
        next(nets[("plain", 8, 0)].parameters()).mul_(2)  # another net (as after retraining): its surface is measured again
    ls.measure_surfaces(nets, ds, 0.5, 5, 1, store=store)
    assert len(calls) == 3
