"""Loss surfaces along filter-normalised random directions.

Li, Xu, Taylor, Studer, Goldstein. "Visualizing the Loss Landscape of Neural
Nets", NeurIPS 2018: draw a Gaussian direction with the shape of the
parameters, rescale each filter of it (each slice along the output dimension)
to the norm of the corresponding filter of the trained weights, and zero the
entries of batch-norm parameters and biases; then evaluate the loss on
``theta + a * d1 + b * d2`` over a grid. Smoothness is quantified here by the
curvature of the surface: at every interior grid point the finite-difference
Hessian of the 2-D slice, and the share of points where it has a clearly
negative eigenvalue (non-convex).

The study (notebook 07): plain and residual nets of two depths trained over
several seeds (``train_nets``); around each trained net, ``pairs`` random
direction pairs (``measure_surfaces``); per seed, the non-convex share averaged
over that net's pairs (``seed_shares``), which the rule L1 compares across seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from .. import keys, runs
from ..claims import Finding
from ..rules import loss_landscape as rules
from ..setting import Setting
from . import degradation as dg

KINDS = ("plain", "residual")


def filter_normalized_direction(model: nn.Module, seed: int = 0) -> list[torch.Tensor]:
    """A random direction, one tensor per parameter, filter-normalised as in Li et al. 2018."""
    g = torch.Generator().manual_seed(seed)
    direction = []
    for p in model.parameters():
        if p.dim() <= 1:  # batch-norm weights and biases, all biases
            direction.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device)
        d_norm = d.reshape(d.shape[0], -1).norm(dim=1).clamp(min=1e-12)
        p_norm = p.detach().reshape(p.shape[0], -1).norm(dim=1)
        direction.append(d * (p_norm / d_norm).reshape(-1, *[1] * (p.dim() - 1)))
    return direction


@torch.no_grad()
def loss_surface(model: nn.Module, data: TensorDataset, d1: list[torch.Tensor],
                 d2: list[torch.Tensor] | None,
                 alphas: np.ndarray, betas: np.ndarray | None = None, device="cpu") -> np.ndarray:
    """Mean cross-entropy (eval mode) at ``theta + a d1 + b d2`` for each (a, b); 1-D when ``d2`` is
    None.

    The model's parameters are restored afterwards.
    """
    model.to(device).eval()
    x, y = (t.to(device) for t in data.tensors[:2])
    params = list(model.parameters())
    theta = [p.detach().clone() for p in params]
    betas = np.zeros(1) if d2 is None else betas
    out = np.zeros((len(alphas), len(betas)))
    try:
        for i, a in enumerate(alphas):
            for j, b in enumerate(betas):
                for p, t, u in zip(params, theta, d1):
                    p.copy_(t + float(a) * u)
                if d2 is not None:
                    for p, v in zip(params, d2):
                        p.add_(float(b) * v)
                out[i, j] = F.cross_entropy(model(x), y).item()
    finally:
        for p, t in zip(params, theta):
            p.copy_(t)
    return out[:, 0] if d2 is None else out


def curvature(surface: np.ndarray, step: float, tol: float = 0.05) -> dict[str, float]:
    """Curvature statistics of a 2-D loss grid from central finite differences.

    Returns the share of interior points whose Hessian has an eigenvalue below
    ``-tol`` times its largest absolute eigenvalue (``nonconvex_share``), the
    median ``|lambda_min / lambda_max|`` over the interior (Li et al.'s
    convexity map summarised), and the number of strict local minima (points
    lower than their 8 neighbours).
    """
    f = surface
    fxx = (f[2:, 1:-1] - 2 * f[1:-1, 1:-1] + f[:-2, 1:-1]) / step ** 2
    fyy = (f[1:-1, 2:] - 2 * f[1:-1, 1:-1] + f[1:-1, :-2]) / step ** 2
    fxy = (f[2:, 2:] - f[2:, :-2] - f[:-2, 2:] + f[:-2, :-2]) / (4 * step ** 2)
    mean, diff = (fxx + fyy) / 2, np.sqrt(((fxx - fyy) / 2) ** 2 + fxy ** 2)
    lam_max, lam_min = mean + diff, mean - diff
    scale = np.maximum(np.abs(lam_max), np.abs(lam_min)).clip(min=1e-12)
    centre = f[1:-1, 1:-1]
    neighbours = np.stack([f[1 + dy:f.shape[0] - 1 + dy, 1 + dx:f.shape[1] - 1 + dx]
                           for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
    return {"nonconvex_share": float((lam_min < -tol * scale).mean()),
            "median_negative_ratio": float(np.median(np.maximum(0.0, -lam_min) / scale)),
            "local_minima": int((centre < neighbours.min(0)).sum())}


def hessian_extremes(loss_fn, params: Sequence[torch.Tensor], tol: float = 1e-2, seed: int = 0,
                     maxiter: int = 50) -> dict[str, float]:
    """The largest and the smallest eigenvalue of the Hessian of ``loss_fn()`` with respect to
    ``params``, and ``ratio`` = |lambda_min / lambda_max| (Li et al. 2018's convexity measure: near
    0 where the surface is locally convex, large where it curves down as strongly as up).

    The Hessian is never formed: scipy's ``eigsh`` (ARPACK's implicitly restarted Lanczos) runs on
    Hessian-vector products from double backward, once for the largest algebraic eigenvalue and once
    for the smallest, from a starting vector drawn with ``seed`` (so the same weights give the same
    numbers). ``tol`` is ARPACK's relative accuracy and ``maxiter`` its restarts; an eigenvalue that
    has not converged by then is NaN (``converged`` counts the two that did): eigenvalues clustered
    near zero can need thousands of products.
    """
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    params = list(params)
    n = sum(p.numel() for p in params)

    def hvp(v: np.ndarray) -> np.ndarray:
        vec = torch.as_tensor(np.asarray(v).ravel(), dtype=params[0].dtype, device=params[0].device)
        grads = torch.autograd.grad(loss_fn(), params, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])
        hv = torch.autograd.grad(flat @ vec, params)
        return torch.cat([h.reshape(-1) for h in hv]).detach().double().cpu().numpy()

    op = LinearOperator((n, n), matvec=hvp, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(n)

    def extreme(which: str) -> float:
        try:
            return float(eigsh(op, k=1, which=which, tol=tol, v0=v0, maxiter=maxiter,
                               return_eigenvectors=False)[0])
        except ArpackNoConvergence:
            return float("nan")

    big, small = extreme("LA"), extreme("SA")
    return {"lambda_max": big, "lambda_min": small, "ratio": abs(small / big) if big
            else float("nan"),
            "converged": int(np.isfinite(big)) + int(np.isfinite(small))}


def hessian_map(model: nn.Module, data: TensorDataset, d1: list[torch.Tensor],
                d2: list[torch.Tensor],
                axis: np.ndarray, device="cpu", tol: float = 1e-2) -> dict[str, np.ndarray]:
    """``hessian_extremes`` of the mean cross-entropy (eval mode, every parameter) at ``theta + a d1
    + b d2`` for each (a, b) of ``axis`` x ``axis``: arrays ``lambda_max``, ``lambda_min``,
    ``ratio`` and ``converged``. The weights are restored afterwards."""
    model.to(device).eval()
    x, y = (t.to(device) for t in data.tensors[:2])
    params = list(model.parameters())
    theta = [p.detach().clone() for p in params]
    out = {k: np.zeros((len(axis), len(axis)))
           for k in ("lambda_max", "lambda_min", "ratio", "converged")}
    try:
        for i, a in enumerate(axis):
            for j, b in enumerate(axis):
                with torch.no_grad():
                    for p, t, u, v in zip(params, theta, d1, d2):
                        p.copy_(t + float(a) * u + float(b) * v)
                r = hessian_extremes(lambda: F.cross_entropy(model(x), y), params, tol)
                for k in out:
                    out[k][i, j] = r[k]
    finally:
        with torch.no_grad():
            for p, t in zip(params, theta):
                p.copy_(t)
    return out


def hessian_run(config: dict, models: Mapping[tuple[str, int, int], nn.Module], data: TensorDataset,
                device: torch.device | str | None = None) -> tuple[dict, None]:
    """One Hessian ratio map from its config (``runs.run_grid``'s ``fn``): the net ``(kind, depth,
    seed)`` along direction pair 0 of its seed over ``[-span, span]`` with ``grid`` points per
    axis."""
    device = torch.device(device if device is not None else config["device"])
    m = models[(config["kind"], config["depth"], config["seed"])]
    d1, d2 = direction_pair(m, config["seed"], 0)
    axis = (np.linspace(-config["span"], config["span"], config["grid"]) if config["grid"] > 1
            else np.zeros(1))
    maps = hessian_map(m, data, d1, d2, axis, device)  # grid 1: the trained point alone
    m.cpu()
    return {k: v.tolist() for k, v in maps.items()}, None


def measure_hessian(models: Mapping[tuple[str, int, int], nn.Module], data: TensorDataset,
                    span: float, grid: int,
                    device: torch.device | str = "cpu", store=None, negative: float = 0.05
                    ) -> tuple[pd.DataFrame, dict[tuple[str, int], np.ndarray]]:
    """Li et al.'s convexity maps beside the finite-difference share: for each net ``(kind, depth,
    seed)`` the ratio |lambda_min / lambda_max| of the full Hessian over a ``grid`` x ``grid`` grid
    of the surface's first direction pair (``grid`` 1: the trained point alone), each map a run of
    the store (keyed like a surface).

    Returns:
        ``(table, maps)``: one row per net with the ratio at the trained point, its median over the
        grid and the share of points where the Hessian has a negative eigenvalue above ``negative``
        times the largest (the full-Hessian counterpart of ``curvature``'s non-convex share), over
        the points where both eigenvalues converged (``points_converged``); the ratio maps by
        ``(kind, depth)`` (NaN where they did not).
    """

    images = keys.tensor_fingerprint(*data.tensors[:2])
    configs = [
        {"name": "hessian-ratio", "study": "landscape", "kind": kind, "depth": depth, "seed": seed,
                "net": keys.tensor_fingerprint(*m.state_dict().values()), "images": images,
                "span": span,
                "grid": grid, "device": torch.device(device).type}
               for (kind, depth, seed), m in models.items()]
    rows, maps = [], {}
    for r in runs.run_grid(configs, hessian_run, (models, data), store, device, "07: Hessian maps"):
        c, res = r["config"], {k: np.array(v) for k, v in r["result"].items()}
        maps[(c["kind"], c["depth"])] = res["ratio"]
        ok = np.isfinite(res["ratio"])
        rows.append({"kind": c["kind"], "depth": c["depth"], "seed": c["seed"],
                     "ratio_at_centre": res["ratio"][grid // 2, grid // 2],
                     "median_ratio": float(np.median(res["ratio"][ok])) if ok.any()
                     else float("nan"),
                     "negative_share": float(
                         (res["lambda_min"][ok] < -negative * np.abs(res["lambda_max"][ok])).mean())
                     if ok.any() else float("nan"),
                     "points_converged": f"{int(ok.sum())} of {ok.size}"})
    return pd.DataFrame(rows), maps


def slice_convexity(curve: np.ndarray, tol: float = 1e-3) -> float:
    """Share of interior points of a 1-D slice with non-negative second difference (1.0: convex)."""
    second = curve[2:] - 2 * curve[1:-1] + curve[:-2]
    return float((second >= -tol * np.abs(curve).max()).mean())


def surfaces_table(results: dict[tuple[str, int], dict]) -> pd.DataFrame:
    """One row per (family, depth) from the per-model curvature dicts."""
    return pd.DataFrame([{"family": f, "depth": d, **r} for (f, d), r in results.items()])


# --- the study: several seeds, several direction pairs --------------------------------------------

def train_nets(nets: dg.DepthRuns,
               setting: Setting) -> tuple[pd.DataFrame, dict[tuple[str, int, int], nn.Module]]:
    """Notebook 01's plain and residual nets: ``degradation.depth_study`` of ``nets`` on
    ``setting``, built from 01's parameters ``p01`` as 01 builds them
    (``DepthRuns.from_params(p01)``, perhaps with other seeds, and ``prepare(p01).setting(device,
    store)``), so with a run store the runs 01 finished load instead of training (seeds beyond 01's,
    or another first seed, train and are kept for next time).

    Each (kind, depth) trains at its best rate from 01's grid, decided on the first seed by final
    training error; seed ``s`` of the plain and the residual net shares initialisation seed and data
    order.

    Returns:
        ``(runs, models)``: one row per run (kind, depth, seed, lr, kept, train_err, converged, ...)
        and the kept trained models by ``(kind, depth, seed)``, on the CPU in eval mode.
    """
    _, runs, models = dg.depth_study(nets, setting)
    return runs, {k: m.cpu().eval() for k, m in models.items()}


def compared_depths(runs: pd.DataFrame, depths: Sequence[int]) -> list[int]:
    """L1's two depths: the shallowest of ``depths`` and the deepest at which every plain and
    residual run converged (``degradation.fitted_depths``: compared nets must fit or plateau); the
    deepest of ``depths`` when no deeper one did (L1 then reads inconclusive, naming the unconverged
    runs)."""
    shallow = min(depths)
    deeper = [d for d in dg.fitted_depths(runs) if d > shallow]
    return [shallow, deeper[-1] if deeper else max(depths)]


def direction_pair(model: nn.Module, seed: int,
                   pair: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Direction pair ``pair`` for a net of training seed ``seed``: filter-normalised draws from
    generator seeds ``10_007 * seed + 2 * pair`` and ``+ 1``. Plain and residual nets have the same
    parameter shapes, so both get the same Gaussian draw (each rescaled to its own filters)."""
    base = 10_007 * seed + 2 * pair
    return filter_normalized_direction(model, base), filter_normalized_direction(model, base + 1)


def surface_run(config: dict, models: Mapping[tuple[str, int, int], nn.Module], data: TensorDataset,
                device: torch.device | str | None = None) -> tuple[dict, None]:
    """One 2-D loss surface from its config (``runs.run_grid``'s ``fn``): the net ``(kind, depth,
    seed)`` of ``models`` along direction pair ``pair`` over ``[-span, span]`` with ``grid`` points
    per axis."""
    device = torch.device(device if device is not None else config["device"])
    m = models[(config["kind"], config["depth"], config["seed"])]
    axis = np.linspace(-config["span"], config["span"], config["grid"])
    d1, d2 = direction_pair(m, config["seed"], config["pair"])
    z = loss_surface(m, data, d1, d2, axis, axis, device)
    m.cpu()
    return {"surface": z.tolist()}, None


def measure_surfaces(models: dict[tuple[str, int, int], nn.Module], data: TensorDataset,
                     span: float, grid: int,
                     pairs: int, device: torch.device | str = "cpu", store=None
                     ) -> tuple[pd.DataFrame, dict[tuple[str, int, int, int], np.ndarray]]:
    """The 2-D loss surface of every net along each of ``pairs`` direction pairs, and its curvature.

    Each surface is a run of ``runs.run_grid`` (``surface_run``) keyed by the net's weights, the
    images, the grid and the pair: with a ``runs.RunStore``, a surface measured before loads instead
    of being measured again.

    Args:
        models: trained nets by ``(kind, depth, seed)``. data: the fixed images the loss is
        evaluated on (fp32, eval mode). span, grid: the surface covers ``[-span, span]`` in both
        directions with ``grid`` points per axis.

    Returns:
        ``(table, surfaces)``: one row per (kind, depth, seed, pair) with ``curvature``'s statistics
        and the loss at the centre; the surfaces by ``(kind, depth, seed, pair)``.
    """

    axis = np.linspace(-span, span, grid)
    images = keys.tensor_fingerprint(*data.tensors[:2])
    configs = [{"name": "loss-surface", "study": "landscape", "kind": kind, "depth": depth,
                "seed": seed, "pair": k,
                "net": keys.tensor_fingerprint(*m.state_dict().values()), "images": images,
                "span": span,
                "grid": grid, "device": torch.device(device).type}
               for (kind, depth, seed), m in models.items() for k in range(pairs)]
    rows, surfaces = [], {}
    for r in runs.run_grid(configs, surface_run, (models, data), store, device, "07: surfaces"):
        c = r["config"]
        z = np.array(r["result"]["surface"])
        surfaces[(c["kind"], c["depth"], c["seed"], c["pair"])] = z
        rows.append({"kind": c["kind"], "depth": c["depth"], "seed": c["seed"], "pair": c["pair"],
                     "centre_loss": z[grid // 2, grid // 2], **curvature(z, axis[1] - axis[0])})
    return pd.DataFrame(rows), surfaces


def seed_shares(table: pd.DataFrame) -> pd.DataFrame:
    """Per seed (rows) and (kind, depth) (columns): the non-convex share averaged over the direction
    pairs."""
    return table.groupby(["seed", "kind", "depth"]).nonconvex_share.mean().unstack(
        ["kind", "depth"]).sort_index()


def slices(models: dict[tuple[str, int], nn.Module], data: TensorDataset, span: float, points: int,
           seed: int,
           device: torch.device | str = "cpu") -> dict[tuple[str, int], np.ndarray]:
    """1-D loss slices along the first direction of pair 0 of training seed ``seed``, one per
    ``(kind, depth)``."""
    line = np.linspace(-span, span, points)
    out = {}
    for key, m in models.items():
        out[key] = loss_surface(m, data, direction_pair(m, seed, 0)[0], None, line, device=device)
        m.cpu()
    return out


def l1_claim(shares: Mapping[tuple[str, int], pd.Series], kept: pd.DataFrame, depths: Sequence[int],
             chance: float, seeds: int) -> Finding:
    """L1 from the non-convex shares of each kind and depth (one per seed, ``shares[(kind,
    depth)]``) and the kept runs the surfaces were drawn on (their errors, rates and
    convergence)."""
    shallow, deep = depths
    col = lambda k, n: shares[(k, n)].tolist()  # noqa: E731
    errs = {f"{k}-{n}": kept[(kept.kind == k) & (kept.depth == n)].sort_values(
        "seed").train_err.tolist()
            for k in KINDS for n in depths}
    d = rules.l1(col("plain", shallow), col("residual", shallow), col("plain", deep),
                 col("residual", deep),
                 kept.converged.tolist(), errs, chance=chance)
    g, s, gr = (d.numbers[k] for k in ("gap_deep", "gap_shallow", "growth"))
    iv = lambda x: f"{x['estimate']:+.2f} [{x['low']:+.2f}, {x['high']:+.2f}]"  # noqa: E731
    lrs = kept.groupby(["kind", "depth"]).lr.first()
    return Finding(d,
                   f"non-convex share, plain minus residual: {iv(g)} at depth {deep}, {iv(s)} at "
                   f"depth {shallow}; growth {iv(gr)} ({seeds} seeds)",
                   evidence={"lrs_kept": {f"{k}-{n}": lr for (k, n), lr in lrs.items()},
                             "shares_by_seed": {f"{k}-{n}": [round(v, 4) for v in col(k, n)]
                                                for k in KINDS
                                                for n in depths}})
