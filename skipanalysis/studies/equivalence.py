"""ResNet vs DenseNet as mathematics: addition, concatenation and tied weights.

Follows the derivation in seed text 001 (a convolution over a concatenation
splits into a sum of per-piece convolutions; a ResNet layer is the case where
every piece shares one weight) and Huang et al. 2017 for the connection count
L(L+1)/2 and growth rate k. All identities are checked in float64.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .. import fitting, keys, runs
from ..claims import Finding
from ..models.densenet import DenseBlock, DenseStageNet, dense_layer_params
from ..models.resnet import PreActBlock, ResidualStageNet
from ..rules import equivalence as rules
from ..setting import Setting


def merge_check(channels: int = 8, n_layers: int = 4, growth: int = 4, size: int = 6,
                seed: int = 0) -> dict:
    """E1: how each family merges its shortcut, read off real modules.

    Returns the max deviation of ``block(x) - branch(x)`` from ``x`` (addition) for a
    residual block, and of the dense block's first ``channels`` output maps from
    ``x`` plus its output width (concatenation).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, channels, size, size, generator=g, dtype=torch.float64)
    # the blocks' weights from the seed too, whatever ran before
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        res = PreActBlock(channels).double().eval()
        dense = DenseBlock(channels, n_layers, growth).double().eval()
    with torch.no_grad():
        add_dev = (res(x) - res.body(x) - x).abs().max().item()
        out = dense(x)
        cat_dev = (out[:, :channels] - x).abs().max().item()
    return {"residual_add_max_dev": add_dev, "residual_out_channels": channels,
            "dense_prefix_max_dev": cat_dev, "dense_out_channels": out.shape[1],
            "dense_expected_channels": channels + n_layers * growth}


def conv_concat_split(pieces: list[torch.Tensor], weight: torch.Tensor, bias: torch.Tensor | None,
                      stride: int,
                      padding: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Convolve the concatenation of ``pieces``, and sum per-piece convolutions with weight slices.

    Returns:
        ``(conv(cat(pieces)), sum_j conv(piece_j, W[:, slice_j]))``; the bias is added once.
    """
    whole = F.conv2d(torch.cat(pieces, 1), weight, bias, stride=stride, padding=padding)
    parts, start = None, 0
    for p in pieces:
        w = weight[:, start:start + p.shape[1]]
        start += p.shape[1]
        y = F.conv2d(p, w, None, stride=stride, padding=padding)
        parts = y if parts is None else parts + y
    if bias is not None:
        parts = parts + bias[None, :, None, None]
    return whole, parts


def conv_concat_trials(n_trials: int = 200, seed: int = 0) -> pd.DataFrame:
    """E2 over random shapes (pieces, channels, kernel, stride, padding; groups=1), float64.

    Returns:
        One row per trial with the shape drawn and ``max_abs_err`` and ``rel_err``.
    """
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for t in range(n_trials):
        n_pieces = int(rng.integers(1, 6))
        chans = [int(c) for c in rng.integers(1, 9, size=n_pieces)]
        k = int(rng.choice([1, 3, 5, 7]))
        stride = int(rng.integers(1, 4))
        padding = int(rng.integers(0, k // 2 + 1))
        out_ch = int(rng.integers(1, 17))
        size = int(rng.integers(k, k + 12))
        batch = int(rng.integers(1, 4))
        pieces = [torch.randn(batch, c, size, size, generator=g, dtype=torch.float64)
                  for c in chans]
        weight = torch.randn(out_ch, sum(chans), k, k, generator=g, dtype=torch.float64)
        bias = torch.randn(out_ch, generator=g, dtype=torch.float64)
        whole, parts = conv_concat_split(pieces, weight, bias, stride, padding)
        err = (whole - parts).abs().max().item()
        rows.append({"trial": t, "pieces": n_pieces, "in_channels": sum(chans),
                     "out_channels": out_ch, "kernel": k,
                     "stride": stride, "padding": padding, "size": size, "max_abs_err": err,
                     "rel_err": err / whole.abs().max().item()})
    return pd.DataFrame(rows)


def tied_dense_equivalence(n_inputs: int = 4, channels: int = 6, out_ch: int = 5, kernel: int = 3,
                           seed: int = 0
                           ) -> float:
    """E3, first half: a conv over the sum of inputs equals a dense conv whose per-input weights are
    all tied.

    Returns the max absolute difference (float64).
    """
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(2, channels, 9, 9, generator=g, dtype=torch.float64) for _ in range(n_inputs)]
    h = torch.randn(out_ch, channels, kernel, kernel, generator=g, dtype=torch.float64)
    resnet_style = F.conv2d(sum(xs), h, padding=kernel // 2)
    dense_tied = F.conv2d(torch.cat(xs, 1), torch.cat([h] * n_inputs, 1), padding=kernel // 2)
    return (resnet_style - dense_tied).abs().max().item()


def best_tied_residual(n_inputs: int, channels: int = 16, out_ch: int = 16, n_samples: int = 4096,
                       seed: int = 0
                       ) -> float:
    """E3, second half: how far the best tied-weight (ResNet) layer is from a random dense layer.

    A dense layer ``Y = sum_j W_j X_j`` with independent Gaussian ``W_j`` and
    inputs ``X_j``; the tied layer ``H (sum_j X_j)`` is fitted by least squares.
    Returns ``||Y - H S||_F / ||Y||_F``. For large ``n_samples`` this tends to
    ``sqrt(1 - 1/n_inputs)`` (the fitted H is the mean of the W_j).
    """
    g = torch.Generator().manual_seed(seed)
    ws = torch.randn(n_inputs, out_ch, channels, generator=g, dtype=torch.float64)
    xs = torch.randn(n_inputs, channels, n_samples, generator=g, dtype=torch.float64)
    y = torch.einsum("joc,jcn->on", ws, xs)
    s = xs.sum(0)
    h = torch.linalg.lstsq(s.T, y.T).solution.T  # minimise ||y - h s||
    return (torch.linalg.norm(y - h @ s) / torch.linalg.norm(y)).item()


def expected_tied_residual(n_inputs: int) -> float:
    """The large-sample limit of ``best_tied_residual``: sqrt(1 - 1/m)."""
    return math.sqrt(1 - 1 / n_inputs)


def dense_connection_census(n_layers: int, growth: int = 12, in_ch: int | None = None,
                            bn_size: int = 4
                            ) -> pd.DataFrame:
    """E4: run a real dense block once and record, per layer, what it received and added.

    A forward pre-hook counts the feature maps each layer is handed (its direct
    connections) and their channels; a forward hook reads the new maps' width.
    """
    in_ch = 2 * growth if in_ch is None else in_ch
    block = DenseBlock(in_ch, n_layers, growth, bn_size).eval()
    rows = []

    def pre_hook(mod, args):
        feats = args[0]
        rows.append({"layer": len(rows) + 1, "connections": len(feats),
                     "in_channels": sum(f.shape[1] for f in feats),
                     "params": sum(p.numel() for p in mod.parameters())})

    def post_hook(mod, args, out):
        rows[-1]["new_maps"] = out.shape[1]

    handles = [m.register_forward_pre_hook(pre_hook) for m in block.layers]
    handles += [m.register_forward_hook(post_hook) for m in block.layers]
    with torch.no_grad():
        block(torch.zeros(1, in_ch, 4, 4))
    for h in handles:
        h.remove()
    df = pd.DataFrame(rows)
    df["params_formula"] = [dense_layer_params(c, growth, bn_size) for c in df["in_channels"]]
    return df


def residual_block_params(width: int) -> int:
    """Parameters of a pre-activation basic block of constant width: two BNs and two 3x3 convs."""
    return 2 * (2 * width) + 2 * 9 * width * width


# --- E5: decoding earlier outputs from the last layer's input -------------------------------------

@torch.no_grad()
def residual_sources(model: ResidualStageNet,
                     x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Earlier outputs of a residual stage and the last block's input.

    Sources are the stem output ``x0`` and the branch outputs ``F_1..F_{L-1}``;
    the last block's input is ``x0 + sum_i F_i`` (pre-activation blocks add nothing after the sum).
    """
    model.eval()
    h = model.stem(x)
    sources = [h]
    for block in model.blocks[:-1]:
        f = block.body(h)
        sources.append(f)
        h = h + f
    return sources, h


@torch.no_grad()
def dense_sources(model: DenseStageNet, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Earlier outputs of a dense block (stem output, then each layer's k new maps) and the last
    layer's input."""
    model.eval()
    feats = [model.stem(x)]
    for layer in model.block.layers[:-1]:
        feats.append(layer(feats))
    return list(feats), torch.cat(feats, 1)


def _pixels(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N*H*W, C) in float64: one sample per position, as a 1x1 convolution sees
    it."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]).double()


def ridge_r2(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
             y_test: torch.Tensor,
             alpha: float = 1e-4) -> float:
    """Held-out R^2 of a ridge regression from ``x`` to ``y`` (rows are samples).

    The penalty is ``alpha`` times the mean eigenvalue of the centred Gram
    matrix, so it does not depend on the features' scale. R^2 is
    ``1 - SSE / SST`` pooled over all target columns, SST about the test mean.
    """
    xm, ym = x_train.mean(0), y_train.mean(0)
    xc, yc = x_train - xm, y_train - ym
    gram = xc.T @ xc
    lam = alpha * torch.trace(gram) / gram.shape[0]
    coef = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), xc.T @ yc)
    pred = (x_test - xm) @ coef + ym
    sse = ((y_test - pred) ** 2).sum()
    sst = ((y_test - y_test.mean(0)) ** 2).sum()
    return (1 - sse / sst).item()


def decodability(sources_train: list[torch.Tensor], last_train: torch.Tensor,
                 sources_test: list[torch.Tensor],
                 last_test: torch.Tensor, alpha: float = 1e-4) -> list[float]:
    """Held-out R^2 of decoding each source's maps, pixel by pixel, linearly from the last layer's
    input."""
    xtr, xte = _pixels(last_train), _pixels(last_test)
    return [ridge_r2(xtr, _pixels(s_tr), xte, _pixels(s_te), alpha) for s_tr,
            s_te in zip(sources_train, sources_test)]


def train_run(config: dict, train_set, test_set,
              device: torch.device | str | None = None) -> tuple[dict, dict]:
    """Train one net of ``decodability_study`` from its config (``runs.run_grid``'s ``fn``): seed,
    build it by its factory name, train with the recipe, then probe it (``probe_r2``) trained and as
    it was at initialisation; returns its row (model, seed, params, diverged, converged, late_share,
    train_err, test_err, and ``r2``: the probe's rows) and its weights on the CPU. The probe is part
    of the run, so re-executing the notebook loads it."""
    model = fitting.build(config)
    initial = copy.deepcopy(model)
    f = fitting.fit(config, train_set, test_set, device, model=model,
                    desc=f"{config['model']} s{config['seed']}")
    state = f.state()
    r2 = [row for s, net in (("trained", f.model.cpu()), ("initialised", initial))
          for row in probe_r2(net, config["model"], s, config["seed"], train_set, test_set,
                              **config["probe"])]
    return {"model": config["model"], "seed": config["seed"], **f.outcome(), "r2": r2}, state


def probe_r2(net: torch.nn.Module, kind: str, state: str, seed: int, train_set, test_set,
             n: int = 256,
             alpha: float = 1e-4) -> list[dict]:
    """E5's probe of one net (``kind`` residual or dense, in ``state`` trained or initialised):
    ``n`` images drawn by ``seed`` from each split, the held-out R^2 of decoding each earlier output
    from the last layer's input (``decodability``); one row per source."""
    sources = residual_sources if kind == "residual" else dense_sources
    g = torch.Generator().manual_seed(seed)
    fit_idx = torch.randperm(len(train_set), generator=g)[:n]
    eval_idx = torch.randperm(len(test_set), generator=g)[:n]
    x_fit, x_eval = train_set.tensors[0][fit_idx].cpu(), test_set.tensors[0][eval_idx].cpu()
    net = net.float().cpu()
    (s_fit, last_fit), (s_eval, last_eval) = sources(net, x_fit), sources(net, x_eval)
    return [{"model": kind, "state": state, "seed": seed, "index": i, "R2": v,
             "source": "stem" if i == 0 else f"layer {i}"}
            for i, v in enumerate(decodability(s_fit, last_fit, s_eval, last_eval, alpha))]


def matched_width(growth: int, n_blocks: int) -> int:
    """The residual stage's width that matches a dense stage of ``n_blocks`` layers: the dense last
    layer's input width, the stem's ``2 * growth`` maps plus ``growth`` from each of the ``n_blocks
    - 1`` layers before it. The decoder then reads the same number of channels in both nets."""
    return (n_blocks + 1) * growth


@dataclass(frozen=True)
class E5Design:
    """What E5 trains and how it probes the nets: a one-stage ResNet and DenseNet-BC per seed.

    Attributes:
        seeds: one net of each family per seed, paired across families by seed. growth: the
        DenseNet's growth rate k (stem 2k maps); the ResNet's width is ``matched_width(growth,
        n_blocks)``. n_blocks: residual blocks / dense layers in the single stage. n_probe: images
        drawn from each split whose pixels fit (training split) and score (test split) the decoder.
        alpha: the ridge penalty, relative to the mean eigenvalue of the Gram matrix (``ridge_r2``).
    """

    seeds: list[int]
    growth: int
    n_blocks: int
    n_probe: int = 256
    alpha: float = 1e-4

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> E5Design:
        """The design from notebook 03's checked parameters: the seeds ``seed .. seed + seeds - 1``,
        ``growth``, ``n_blocks``, ``n_probe`` and ``ridge_alpha``."""
        return cls(seeds=list(range(p["seed"], p["seed"] + p["seeds"])), growth=p["growth"],
                   n_blocks=p["n_blocks"],
                   n_probe=p["n_probe"], alpha=p["ridge_alpha"])


def decodability_study(design: E5Design, setting: Setting) -> tuple[pd.DataFrame, pd.DataFrame]:
    """E5 over ``design.seeds``: train a one-stage pre-activation ResNet and DenseNet-BC per seed on
    ``setting.train`` with ``setting.cfg``, then decode their earlier outputs from the last layer's
    input (``decodability``), in the trained nets and, as the random-feature baseline, in the same
    nets at initialisation (same seed, no training). The ResNet's width is ``matched_width(growth,
    n_blocks)``, the width of the DenseNet's last input.

    Seed ``s`` fixes each net's initialisation and batch order and the probe images: ``n_probe``
    drawn at random from each split to fit the decoder (training split) and score it (test split),
    so every random draw behind an R^2 changes with the seed. The nets and their probes
    (``probe_r2``) go through ``runs.run_grid`` (``train_run``): with a ``runs.RunStore`` in
    ``setting.store``, a finished net loads its record, probe included, instead of training again.

    Returns:
        ``(r2, runs)``: one row per (model, state, seed, source) with the held-out R^2 (state
        "trained" or "initialised"), and one row per trained net (model, seed, params, diverged,
        converged, late_share, train_err, test_err).
    """
    d, s = design, setting
    nets = {
        "residual": (f"preact-stage-{d.n_blocks}", {"width": matched_width(d.growth, d.n_blocks)}),
            "dense": (f"dense-stage-{d.n_blocks}", {"growth": d.growth})}
    ids = [keys.tensor_fingerprint(*data.tensors[:2]) for data in (s.train, s.test)]
    recipe = s.cfg.recipe()
    configs = [{"name": nets[kind][0], "study": "decodability", "model": kind, "seed": seed,
                "model_args": nets[kind][1], "recipe": {**recipe, "seed": seed},
                "train_data": ids[0],
                "test_data": ids[1], "probe": {"n": d.n_probe, "alpha": d.alpha},
                "device": torch.device(s.device).type}
               for seed in d.seeds for kind in nets]
    r2, rows = [], []
    for rec in runs.run_grid(configs, train_run, (s.train, s.test), s.store, s.device,
                             "03: E5 nets"):
        row = dict(rec["result"])
        r2 += row.pop("r2")
        rows.append(row)
    return pd.DataFrame(r2), pd.DataFrame(rows)


# --- the claims -----------------------------------------------------------------------------------

def e5_decision(r2: pd.DataFrame, margin: float, converged=None):
    """E5's rule on ``decodability_study``'s R^2 table: per seed, the mean and minimum R^2 of each
    model in each state (trained and initialised), paired by seed."""

    per = r2.groupby(["state", "model", "seed"]).R2.agg(["mean", "min"])
    get = lambda state, model, col: per.loc[(state, model)][col].tolist()  # noqa: E731
    return rules.e5(get("trained", "dense", "mean"), get("trained", "residual", "mean"),
                    get("trained", "dense", "min"), margin, get("initialised", "dense", "mean"),
                    get("initialised", "residual", "mean"), get("initialised", "dense", "min"),
                    None if converged is None else list(converged))


def tied_fit_table(max_inputs: int, seed: int = 0) -> pd.DataFrame:
    """E3: for m = 1..``max_inputs`` inputs, the best tied fit's relative residual and its
    large-sample limit."""
    fit = pd.DataFrame({"inputs": range(1, max_inputs + 1)})
    fit["residual"] = [best_tied_residual(m, seed=seed) for m in fit["inputs"]]
    fit["expected"] = [expected_tied_residual(m) for m in fit["inputs"]]
    return fit


def growth_census(max_layers: int, growth: int, growths: tuple[int, ...] = (12, 24, 32)
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """E4: ``(census, layers)``: counted connections against L(L+1)/2 for L = 1..``max_layers`` at
    ``growth``, and the per-layer census of a ``max_layers``-layer block for each of ``growths``
    (column ``k``)."""
    census = pd.DataFrame([{"L": L, "counted": dense_connection_census(L, growth).connections.sum()}
                           for L in range(1, max_layers + 1)])
    census["L(L+1)/2"] = census.L * (census.L + 1) // 2
    layers = pd.concat([dense_connection_census(max_layers, k).assign(k=k) for k in growths])
    return census, layers


def e1_claim(merge: dict) -> Finding:
    """E1 from ``merge_check``: the residual block adds its input back exactly, the dense block
    passes it on."""
    return Finding(rules.e1(merge), "block(x) - F(x) differs from x by "
                                    f"{merge['residual_add_max_dev']:.1e}; the dense block passes "
                                    f"its input through untouched ({merge['dense_out_channels']} = "
                                    f"{merge['dense_expected_channels']} channels)",
                   evidence=dict(merge))


def e2_claim(trials: pd.DataFrame) -> Finding:
    """E2 from ``conv_concat_trials``: a convolution over a concatenation is the sum of per-piece
    convolutions."""
    worst = float(trials["max_abs_err"].max())
    return Finding(rules.e2(trials["rel_err"].tolist()),
                   f"over {len(trials)} random shapes the largest difference is {worst:.1e}",
                   evidence={"trials": len(trials), "max_abs_err": worst})


def e3_claim(tied_err: float, fit: pd.DataFrame, max_inputs: int) -> Finding:
    """E3 from ``tied_dense_equivalence`` and ``tied_fit_table``: tied weights reproduce the ResNet
    layer, but not a dense layer."""
    res = fit["residual"]
    return Finding(rules.e3(tied_err, res.tolist()),
                   f"tying the weights reproduces the ResNet layer to {tied_err:.0e}, but the best "
                   f"tied fit to a dense layer misses {res.iloc[1]:.0%} of it at m=2 and "
                   f"{res.iloc[-1]:.0%} at m={max_inputs}",
                   evidence={"residual_m2": res.iloc[1], f"residual_m{max_inputs}": res.iloc[-1],
                             "expected_m2": fit["expected"].iloc[1]})


def e4_claim(census: pd.DataFrame, layers: pd.DataFrame, max_layers: int) -> Finding:
    """E4 from ``growth_census``: the connections of a dense block and the k maps each layer
    adds."""
    d = rules.e4(census.counted.tolist(), census["L(L+1)/2"].tolist(), layers.new_maps.tolist(),
                 layers.k.tolist(),
                 layers.params.tolist(), layers.params_formula.tolist())
    return Finding(
        d, f"a {max_layers}-layer block has {census.counted.iloc[-1]} direct connections (formula "
                      f"{census['L(L+1)/2'].iloc[-1]}), each layer adding exactly k maps",
                   evidence={"N": max_layers, "new_maps": sorted(layers.new_maps.unique())})


def e5_claim(r2: pd.DataFrame, runs_table: pd.DataFrame, margin: float, width: int,
             seeds: int) -> Finding:
    """E5 from ``decodability_study``'s R^2 table and its trained nets (``runs_table``: params, test
    error, convergence per model and seed), trained and at initialisation, paired by seed."""
    per_seed = r2.groupby(["state", "model", "seed"]).R2.agg(["mean", "min"]).loc["trained"]
    init = r2[r2.state == "initialised"].groupby("model").R2.mean().round(4).to_dict()
    return Finding(e5_decision(r2, margin, runs_table.converged),
                   "earlier outputs decode with mean R^2 "
                   f"{per_seed.loc['dense', 'mean'].mean():.3f} from the DenseNet's last input and "
                   f"{per_seed.loc['residual', 'mean'].mean():.3f} from the ResNet's, both {width} "
                   f"channels wide ({seeds} seeds; at initialisation {init['dense']:.3f} and "
                   f"{init['residual']:.3f})",
                   evidence={"margin": margin, "width": width, "mean_r2_at_init": init,
                             "params": runs_table.groupby("model").params.first().to_dict(),
                             "test_err": runs_table.groupby("model").test_err.mean().round(
                                 4).to_dict()})
