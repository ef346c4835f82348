"""skipanalysis.studies.loss_landscape: filter-normalised directions, loss surfaces, curvature and
the stored surfaces."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from skipanalysis import tasks
from skipanalysis.figures import loss_landscape as figs
from skipanalysis.models import cifar_resnet
from skipanalysis.studies import loss_landscape as ls


def test_filter_normalisation_matches_the_model_filter_norms():
    m = cifar_resnet(8)
    d = ls.filter_normalized_direction(m, seed=3)
    for p, q in zip(m.parameters(), d):
        if p.dim() <= 1:
            assert q.abs().sum() == 0  # BN parameters and biases are zeroed
        else:
            assert torch.allclose(q.reshape(q.shape[0], -1).norm(dim=1),
                                  p.reshape(p.shape[0], -1).norm(dim=1),
                                  rtol=1e-5)


def test_loss_surface_centre_and_restoration():
    m = cifar_resnet(8).eval()
    ds = tasks.texture_classification(20, 8, seed=2)
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
    bowl, saddle = ls.curvature(X ** 2 + Y ** 2, a[1] - a[0]), ls.curvature(X ** 2 - Y ** 2,
                                                                            a[1] - a[0])
    assert (bowl["nonconvex_share"] == 0 and bowl["local_minima"] == 1
            and bowl["median_negative_ratio"] == 0)
    assert saddle["nonconvex_share"] == 1 and saddle["local_minima"] == 0
    assert ls.slice_convexity(a ** 2) == 1.0 and ls.slice_convexity(np.cos(6 * a)) < 0.7


def test_direction_pairs_are_shared_between_plain_and_residual_and_shares_are_averaged():
    torch.manual_seed(0)
    plain, res = cifar_resnet(8, "plain").eval(), cifar_resnet(8, "residual").eval()
    res.load_state_dict(plain.state_dict())  # same weights: the same draw gives the same direction
    for a, b in zip(ls.direction_pair(plain, 3, 1)[0], ls.direction_pair(res, 3, 1)[0]):
        assert torch.equal(a, b)
    assert not torch.equal(ls.direction_pair(plain, 3, 1)[0][0],
                           ls.direction_pair(plain, 3, 0)[0][0])
    ds = tasks.texture_classification(8, 8, seed=1)
    table, surfaces = ls.measure_surfaces({("plain", 8, 3): plain, ("residual", 8, 3): res}, ds,
                                          0.5, 5, pairs=2)
    assert len(table) == 4 and surfaces[("plain", 8, 3, 1)].shape == (5, 5)
    with torch.no_grad():
        centre = F.cross_entropy(plain(ds.tensors[0]), ds.tensors[1]).item()
    assert table.centre_loss.iloc[0] == pytest.approx(centre, rel=1e-5)
    shares = ls.seed_shares(table)
    assert shares.loc[3, ("plain", 8)] == pytest.approx(
        table[table.kind == "plain"].nonconvex_share.mean())


def test_surfaces_through_a_store_are_measured_once_per_net_and_grid(tmp_path, monkeypatch):
    from skipanalysis import runs as rs

    torch.manual_seed(0)
    nets = {("plain", 8, 0): cifar_resnet(8, "plain").eval(),
            ("residual", 8, 0): cifar_resnet(8, "residual").eval()}
    ds = tasks.texture_classification(8, 8, seed=1)
    calls, real = [], ls.loss_surface
    monkeypatch.setattr(ls, "loss_surface", lambda *a, **k: calls.append(1) or real(*a, **k))
    store = rs.RunStore(tmp_path / "store")
    t1, s1 = ls.measure_surfaces(nets, ds, 0.5, 5, 1, store=store)
    t2, s2 = ls.measure_surfaces(nets, ds, 0.5, 5, 1, store=store)
    assert len(calls) == 2 and all(np.array_equal(s1[k], s2[k]) for k in s1)
    pd.testing.assert_frame_equal(t1, t2)
    with torch.no_grad():
        # another net (as after retraining): its surface is measured again
        next(nets[("plain", 8, 0)].parameters()).mul_(2)
    ls.measure_surfaces(nets, ds, 0.5, 5, 1, store=store)
    assert len(calls) == 3


def test_hessian_extremes_of_a_quadratic_with_known_eigenvalues():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    eig = np.array([5.0, 2.0, 1.5, 1.0, 0.7, 0.5, 0.2, 0.1, -0.05, -0.3, -0.8, -2.5])
    a = torch.tensor(q @ np.diag(eig) @ q.T)
    # a quadratic's Hessian is the same everywhere
    w = torch.randn(12, dtype=torch.float64, requires_grad=True)
    r = ls.hessian_extremes(lambda: 0.5 * w @ a @ w, [w], tol=1e-8)
    assert r["converged"] == 2
    assert r["lambda_max"] == pytest.approx(5.0, rel=1e-6) and r["lambda_min"] == pytest.approx(
        -2.5, rel=1e-6)
    assert r["ratio"] == pytest.approx(0.5, rel=1e-6)
    # eigenvalues squared: all >= 0
    convex = ls.hessian_extremes(lambda: 0.5 * w @ (a @ a) @ w, [w], tol=1e-8)
    assert convex["lambda_min"] == pytest.approx(0.0025, rel=1e-4) and convex["ratio"] < 1e-3


def test_hessian_of_a_small_net_agrees_with_the_dense_hessian():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                              torch.nn.Linear(4, 2)).double()
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 2, (16,))
    params = list(net.parameters())
    shapes = [p.shape for p in params]

    def loss_of(flat):
        chunks, i = [], 0
        for s in shapes:
            n = int(np.prod(s))
            chunks.append(flat[i:i + n].reshape(s))
            i += n
        h = torch.tanh(x @ chunks[0].T + chunks[1])
        return F.cross_entropy(h @ chunks[2].T + chunks[3], y)

    flat = torch.cat([p.detach().reshape(-1) for p in params])
    # a second route
    dense = np.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, flat).numpy())
    r = ls.hessian_extremes(lambda: F.cross_entropy(net(x), y), params, tol=1e-10)
    assert r["lambda_max"] == pytest.approx(dense[-1], rel=1e-6)
    assert r["lambda_min"] == pytest.approx(dense[0], abs=1e-8)


def test_hessian_maps_through_a_store_restore_the_weights(tmp_path):
    from skipanalysis import runs as rs

    torch.manual_seed(0)
    tiny = lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 6), torch.nn.Tanh(),  # noqa: E731
                                       # any module: a small one keeps Lanczos quick
                                       torch.nn.Linear(6, 10)).eval()
    nets = {("plain", 8, 0): tiny(), ("residual", 8, 0): tiny()}
    before = {k: [p.clone() for p in m.parameters()] for k, m in nets.items()}
    ds = tasks.texture_classification(8, 8, seed=1)
    store = rs.RunStore(tmp_path / "store")
    table, maps = ls.measure_hessian(nets, ds, 0.5, 3, store=store)
    assert set(maps) == {("plain", 8), ("residual", 8)} and maps[("plain", 8)].shape == (3, 3)
    assert (table.median_ratio >= 0).all() and table.negative_share.between(0, 1).all()
    assert set(table.points_converged) == {"9 of 9"}
    assert all(torch.equal(a, b) for k, m in nets.items() for a,
               b in zip(before[k], m.parameters()))
    again, maps2 = ls.measure_hessian(nets, ds, 0.5, 3, store=store)  # loaded, not measured again
    assert all(np.array_equal(maps[k], maps2[k]) for k in maps)
    figs.plot_hessian(maps, 0.5)
    centre, _ = ls.measure_hessian(nets, ds, 0.5, 1)  # grid 1: the trained point, the map's centre
    assert centre.ratio_at_centre.to_numpy() == pytest.approx(table.ratio_at_centre.to_numpy(),
                                                              rel=1e-6)


def test_an_eigenvalue_that_does_not_converge_is_nan_not_a_guess():
    rng = np.random.default_rng(0)
    # the smallest sits in a tight cluster
    eig = np.concatenate([[1.0], -np.linspace(1e-6, 2e-6, 199)])
    q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    a = torch.tensor(q @ np.diag(eig) @ q.T)
    w = torch.zeros(200, dtype=torch.float64, requires_grad=True)
    r = ls.hessian_extremes(lambda: 0.5 * w @ a @ w, [w], tol=1e-12, maxiter=1)
    assert r["lambda_max"] == pytest.approx(1.0, rel=1e-6)
    assert np.isnan(r["lambda_min"]) and np.isnan(r["ratio"]) and r["converged"] == 1
