"""Notebook 02's tables and claims, read from what ``studies.gradient_flow`` trained and measured:
the early/late ratio of every gradient profile and the kept runs with their ratios (G1, G4, G6), the
first block's gradient (G2), the residual nets' mean path length (G5), and the claims G1-G6.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..claims import Finding
from ..measure.probes import early_late_ratio
from ..rules import gradient_flow as rules


def ratios(profiles: pd.DataFrame, k: int = 3, column: str = "grad_rms") -> pd.DataFrame:
    """The early/late ratio (``early_late_ratio``) of every profile: one row per family, depth, bn,
    seed, step (the columns ``profiles`` has among those)."""
    keys = [c for c in ("family", "config", "depth", "bn", "seed", "step", "point")
            if c in profiles]
    out = profiles.groupby(keys).apply(lambda g: early_late_ratio(g, k, column),
                                       include_groups=False)
    return out.rename("early_late").reset_index()


def run_table(runs: pd.DataFrame, profiles: pd.DataFrame, k: int = 3,
              column: str = "grad_rms") -> pd.DataFrame:
    """The kept runs of ``train_study``, one row per family and seed, with the early/late ratio at
    each probe point as ``early_late_<point>`` (init, half-way, end)."""
    r = ratios(profiles, k, column).pivot_table(index=["family", "seed"], columns="point",
                                                values="early_late")
    r = r[[p for p in ("init", "half-way", "end") if p in r.columns]]
    r.columns = [f"early_late_{c}" for c in r.columns]
    return runs[runs.kept].merge(r.reset_index(), on=["family", "seed"],
                                 how="left").sort_values(["family", "seed"])


def summarize_runs(table: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Per family of a ``run_table``: runs, the rates kept (``rate x count``), converged runs, mean
    training (and test) error, and the geometric mean over seeds of each early/late ratio column."""
    rows = []
    for fam, g in table.groupby("family", sort=False):
        row = {"family": fam, "runs": len(g), "lr kept": ", ".join(f"{lr:g} x{n}" for lr, n in
                                                                   g.lr.value_counts().sort_index().items()),
               "converged": int(g.converged.sum()), "train_err": g.train_err.mean()}
        if "test_err" in g and g.test_err.notna().any():
            row["test_err"] = g.test_err.mean()
        for c in [c for c in g.columns if c.startswith("early_late_")]:
            row[c] = float(np.exp(np.log(g[c]).mean()))
        rows.append(row)
    out = pd.DataFrame(rows).set_index("family")
    return out.loc[list(order)] if order is not None else out


def first_block_norms(profiles: pd.DataFrame, family: str, depth: int, bn: bool = False,
                      step: int = 0,
                      column: str = "grad_rms") -> list[float]:
    """Per seed (in seed order), the gradient of the first block's first convolution (layer 2, after
    the stem)."""
    sel = profiles[(profiles.family == family) & (profiles.depth == depth) & (profiles.bn == bn)
                   & (profiles.step == step) & (profiles.layer == 2)]
    return sel.sort_values("seed")[column].tolist()


def mean_path_lengths(paths: pd.DataFrame) -> pd.Series:
    """Per seed, the gradient-weighted mean path length: sum over k of k times the share of gradient
    at k."""
    return paths.assign(w=paths.length * paths.share_of_grad).groupby("seed").w.sum().rename(
        "mean_path_length")


# --- the claims: each helper returns (decision, headline) from the tables the studies made --------

def g1_claim(init: pd.DataFrame, table: pd.DataFrame, depths: Sequence[int], train_depth: int):
    """G1: the plain nets' early/late ratios with BN at initialisation (each depth) and half-way and
    at the end of training (``table``, one row per trained run)."""
    r0 = ratios(init)
    r0 = r0[(r0.family == "plain") & r0.bn].sort_values("seed")
    plain = table[table.family == "plain"].sort_values("seed")
    points = {f"init, depth {d}": r0[r0.depth == d].early_late.tolist() for d in depths}
    points |= {f"{p}, depth {train_depth}": plain[f"early_late_{p}"].tolist()
               for p in ("half-way", "end")}
    d = rules.g1(points, plain.converged.tolist())
    return Finding(d, "with BN, the plain nets' first layers get " + ", ".join(
               f"{v:.3g}x ({k})" for k, v in d.numbers["geometric_mean_ratio"].items())
               + " the RMS gradient of their last layers (geometric means over seeds)")


def g2_claim(init: pd.DataFrame, shallow: int, deep: int):
    """G2: without BN, the first block's gradient of the deep net over the shallow net's, plain and
    residual."""
    fb = {(f, d): first_block_norms(init, f, d, bn=False) for f in ("plain", "residual")
          for d in (shallow, deep)}
    d = rules.g2(fb[("plain", shallow)], fb[("plain", deep)], fb[("residual", shallow)],
                 fb[("residual", deep)])
    return Finding(d, f"without BN, going from depth {shallow} to {deep} multiplies the first "
                      f"block's gradient by {d.numbers['plain_deep_over_shallow']:.2g} in the "
                      f"plain net and {d.numbers['residual_deep_over_shallow']:.2g} in the "
                      "residual net (geometric means over seeds)")


def g4_claim(table: pd.DataFrame, train_depth: int):
    """G4: after training, the dense net's early/late ratio against the residual and plain nets of
    each seed."""
    end = {f: g.sort_values("seed").early_late_end.tolist() for f, g in table.groupby("family")}
    d = rules.g4(end["dense"], end["residual"], end["plain"], table.converged.tolist())
    logs = {f: 10 ** d.numbers["log10_ratio"][f]["estimate"]
            for f in ("dense", "residual", "plain")}
    return Finding(d, f"after training, the early/late gradient ratio is {logs['dense']:.3g} "
                      f"(dense), {logs['residual']:.3g} (residual) and {logs['plain']:.3g} (plain) "
                      f"at depth about {train_depth} (geometric means over seeds)")


def g3_claim(shat: pd.DataFrame, floor: float):
    """G3: the decay of the neighbour gradient correlation with depth, plain against residual,
    paired by seed."""
    paired = shat.pivot_table(index=["seed", "depth"], columns="family",
                              values="correlation").reset_index()
    bn = {k.replace("-", "_"): paired[k].tolist() for k in ("plain-bn", "residual-bn")
          if k in paired}
    d = rules.g3(paired.depth.tolist(), paired.plain.tolist(), paired.residual.tolist(), floor,
                 paired.seed.tolist(),
                 **bn)
    deepest = int(paired.depth.max())
    last = paired[paired.depth == deepest].median(numeric_only=True)
    rate = lambda k, at=d.numbers: at.get(k, {}).get("estimate", float("nan"))  # noqa: E731
    bn_nums = d.numbers.get("batch_normed", {})
    with_bn = "" if not bn else (
        f"; with batch norm (batch statistics) {rate('plain_decay', bn_nums):.3g} vs "
        f"{rate('residual_decay', bn_nums):.3g}, correlating {last['plain-bn']:.2f} vs "
        f"{last['residual-bn']:.2f} at depth {deepest}; the batch-normed ResNet's log-log slope is "
        f"{rate('residual_loglog_slope', bn_nums):.2f} (Balduzzi et al.: -0.5)")
    return Finding(d, f"neighbouring input gradients decay at {rate('plain_decay'):.3g} (plain) vs "
                      f"{rate('residual_decay'):.3g} (residual) per layer in log without batch "
                      f"norm; at depth {deepest} they correlate {last['plain']:.2f} vs "
                      f"{last['residual']:.2f} (medians over seeds){with_bn}")


def g5_claim(lesions: pd.DataFrame, paths: pd.DataFrame, n_blocks: int, converged: list[bool],
             chance: float):
    """G5: median single-lesion damage per seed (residual and plain) and the residual nets' mean
    path length."""
    med = lesions.groupby(["family", "seed"]).damage.median().unstack("family")
    base = lesions.groupby(["family", "seed"]).base_err.first().unstack("family")
    lengths = mean_path_lengths(paths)
    d = rules.g5(med["residual"].tolist(), med["plain"].tolist(), lengths.tolist(), n_blocks,
                 {f: base[f].tolist() for f in ("plain", "residual")}, chance, converged)
    return Finding(d, f"deleting one block does a median damage of {med['residual'].mean():.2f} to "
                      f"the residual nets and {med['plain'].mean():.2f} to the plain nets (0: "
                      "none, 1: chance; mean over seeds); the residual nets' gradient comes from "
                      f"paths of mean length {lengths.mean():.1f} of {n_blocks} blocks")


def g6_claim(sweep: pd.DataFrame, order: list[str], epochs: float):
    """G6: steps to fit the training data (``steps_to_fit``) along the connectivity sweep, paired by
    seed; a run that never fits leaves the claim open."""
    steps = {c: sweep[sweep.family == c].sort_values("seed").steps_to_fit.tolist() for c in order}
    fits = [math.isfinite(v) for c in order for v in steps[c]]
    d = rules.g6(steps, fits)
    mean = {c: np.nanmean(v) if any(math.isfinite(x) for x in v) else math.nan for c,
            v in steps.items()}
    return Finding(d,
                   f"steps to fit the training data (runs of {epochs:g} epochs, {sum(fits)} of "
                   f"{len(fits)} fit): "
                      + ", ".join(f"{c} {mean[c]:.0f}" for c in order))
