"""Rules for notebook 02 (gradient flow): G1-G6.

Gradient ratios span orders of magnitude and are positive, so the rules read them on a log10 scale:
the interval of a ratio is the t interval over seeds of the mean log10 ratio (a geometric mean with
its interval).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .. import stats
from .core import RULES, Decision, _decide, _unconverged, needed, rule

__all__ = ["g1", "g2", "g3", "g4", "g5", "g6"]

# early/late ratios inside this band: healthy (neither vanishing nor exploding)
G1_BAND = (0.1, 10.0)
# shown outside this band at some point: vanished (below) or exploded (above)
G1_BROKEN = (0.01, 100.0)
G2_SHRINK = 0.1  # deep/shallow first-block gradient below 0.1: it shrank
G2_KEEP = (0.5, 2.0)  # the residual net keeps it: inside this band (an explosion is not "kept")
G2_LOST = (0.1, 10.0)  # the residual net lost it: shown below 0.1 (shrank) or above 10 (exploded)
G3_FACTOR = 2.0  # "much faster": the plain decay rate at least twice the residual one
G3_MIN_RUNS = 5  # runs per depth below which a bootstrap cannot bound a slope
# lesion damage (share of the way to chance): barely hurt below, ruined above
G5_BARELY, G5_RUINED = 0.2, 0.5


def log10s(values: Iterable[float]) -> list[float]:
    """log10 of each value; zero, negative and non-finite values become NaN (dropped by the
    intervals)."""
    out = []
    for v in values:
        v = float(v)
        out.append(math.log10(v) if v > 0 and math.isfinite(v) else math.nan)
    return out


def _log_ratio(num: Sequence[float], den: Sequence[float]) -> list[float]:
    """Per seed, log10(num[i] / den[i])."""
    if len(num) != len(den):
        raise ValueError(f"paired values need equal lengths, got {len(num)} and {len(den)}")
    a, b = log10s(num), log10s(den)
    return [x - y for x, y in zip(a, b)]


@rule("G1", """Early/late gradient ratio of the deep plain net with batch norm (RMS weight gradient
of the first three convolutions over the last three), one ratio per seed, read on a log10 scale: for
each measured point (initialisation at each depth, half-way and end of training) the 95% t interval
over seeds of the mean log10 ratio. Healthy is a two-sided band, 0.1 to 10: early gradients neither
vanish nor explode against the late ones. Supported if at every point the interval lies inside the
band (an intersection: no correction needed). Refuted if at some point the ratio is shown below 0.01
(vanished) or above 100 (exploded): one-sided t tests at each point and side, Holm-corrected over
all of them at 0.05. Inconclusive otherwise, or when a training run behind the trained points did
not converge (the points at initialisation are not gated).""", per_seed=("points",))
def g1(points: Mapping[str, Sequence[float]], converged: Iterable[bool] | None = None) -> Decision:
    ivs = {name: stats.mean_interval(log10s(r)) for name, r in points.items()}
    nums = {"log10_ratio": {k: v.as_dict() for k, v in ivs.items()},
            "geometric_mean_ratio": {k: round(10 ** v.estimate, 4) for k, v in ivs.items()
                                     if math.isfinite(v.estimate)},
            "healthy_band": G1_BAND, "broken_outside": G1_BROKEN}
    if not ivs:
        return Decision("G1", "inconclusive", RULES["G1"].text, {**nums, "points": "none measured"})
    if (d := _unconverged("G1", converged, nums)) is not None:
        return d
    lo, hi = (math.log10(v) for v in G1_BAND)
    broken_lo, broken_hi = (math.log10(v) for v in G1_BROKEN)
    p = {}
    for name, r in points.items():
        logs = [v for v in log10s(r) if math.isfinite(v)]
        p[f"{name}: vanished"] = stats.one_sided_p([v - broken_lo for v in logs], "below")
        p[f"{name}: exploded"] = stats.one_sided_p([v - broken_hi for v in logs], "above")
    holm = stats.holm(p)
    nums["broken_holm"] = {"adjusted_p": {k: round(v, 5) for k, v in holm["adjusted"].items()},
                           "method": holm["method"]}
    return _decide("G1", all(lo < v.low and v.high < hi for v in ivs.values()),
                   any(holm["rejected"].values()),
                   nums)


@rule("G2", """Without batch norm, at initialisation: per seed, the gradient of the first block's
first convolution in the deep net over that in the shallow net (same seed), on a log10 scale, with
the 95% t interval over seeds of its mean, for plain and for residual nets. Supported if the plain
interval lies below log10(0.1) (the early gradient shrinks more than tenfold with depth) and the
residual interval lies inside log10(0.5) to log10(2) (kept: a two-sided band, since a gradient that
explodes with depth is not kept); refuted if the plain interval lies above log10(0.5) (it does not
shrink), or the residual interval lies below log10(0.1) or above log10(10) (it shrinks or explodes
tenfold); inconclusive otherwise.""", per_seed=("plain_shallow", "plain_deep", "residual_shallow",
"residual_deep"))
def g2(plain_shallow: Sequence[float], plain_deep: Sequence[float],
       residual_shallow: Sequence[float],
       residual_deep: Sequence[float]) -> Decision:
    p = stats.mean_interval(_log_ratio(plain_deep, plain_shallow))
    r = stats.mean_interval(_log_ratio(residual_deep, residual_shallow))
    diff = stats.paired_difference(_log_ratio(plain_deep, plain_shallow),
                                   _log_ratio(residual_deep, residual_shallow))
    nums = {"plain_log10_deep_over_shallow": p.as_dict(),
            "residual_log10_deep_over_shallow": r.as_dict(),
            "plain_minus_residual_log10": diff.as_dict(),
            "plain_deep_over_shallow": 10 ** p.estimate if math.isfinite(p.estimate) else None,
            "residual_deep_over_shallow": 10 ** r.estimate if math.isfinite(r.estimate) else None}
    shrink = math.log10(G2_SHRINK)
    keep_lo, keep_hi = (math.log10(v) for v in G2_KEEP)
    lost_lo, lost_hi = (math.log10(v) for v in G2_LOST)
    nums.update(keep_band=G2_KEEP, lost_outside=G2_LOST)
    return _decide("G2", p.high < shrink and keep_lo < r.low and r.high < keep_hi,
                   p.low > keep_lo or r.high < lost_lo or r.low > lost_hi, nums)


@rule("G3", """Decay rate of the neighbour gradient correlation with depth: minus the least-squares
slope of ln(correlation) on depth. A correlation at or below the stated floor is noise, so each
seed's fit stops at the first depth where either arm reaches the floor (that point kept at the
floor, which makes the decay a lower bound: the fit is censored) and deeper points are dropped;
fitting through floor points would flatten the plain decay and could refute falsely. Plain and
residual nets share seeds (line, read-out and initialisation), so per seed and depth we form ln
c_plain - 2 ln c_residual, whose slope is minus (plain decay - 2 x residual decay); one slope per
seed over its kept depths (at least two) and the t interval over seeds (stats.slope_interval with
the seeds). Supported if plain decay - 2 x residual decay has its interval above 0 (plain
correlation decays more than twice as fast: "much faster"). Refuted if the interval lies below 0 and
no fit was censored (a lower bound cannot show a slower decay). Inconclusive otherwise, or with
fewer than 5 seeds with two depths kept. With batch-normed arms (a plain and a residual net with
batch norm, probed with the batch statistics of the line's points: Balduzzi et al. find batch-normed
feedforward nets shatter while batch-normed ResNets decay sublinearly, about 1/sqrt(depth)), the
same paired comparison is made within that regime, censored on its own, and the verdict needs both
regimes: supported when both intervals lie above 0, refuted when either lies below 0 uncensored; the
batch-normed ResNet's log-log slope (ln correlation on ln depth, per seed) is reported beside
Balduzzi et al.'s -0.5.""",
      labelled=("depths", "plain", "residual", "plain_bn", "residual_bn"), labels="seeds")
def g3(depths: Sequence[float], plain: Sequence[float], residual: Sequence[float],
       floor: float = 0.01,
       seeds: Sequence | None = None, plain_bn: Sequence[float] | None = None,
       residual_bn: Sequence[float] | None = None) -> Decision:
    """One entry of ``depths``, ``plain`` and ``residual`` (and the batch-normed arms ``plain_bn``
    and ``residual_bn``, given together) per (depth, seed) point; ``seeds`` names each point's seed
    (without it every point counts as its own seed's, and the fit cannot be paired: the verdict is
    inconclusive)."""
    if not 0 < floor < 1:
        raise ValueError(f"floor={floor!r}: the correlation floor must be in (0, 1)")
    if (plain_bn is None) != (residual_bn is None):
        raise ValueError("plain_bn and residual_bn: give both batch-normed arms or neither")
    x = np.asarray(depths, dtype=float)
    arms = {"plain": plain, "residual": residual, "plain_bn": plain_bn, "residual_bn": residual_bn}
    arms = {k: np.asarray(v, dtype=float) for k, v in arms.items() if v is not None}
    if any(len(v) != len(x) for v in arms.values()):
        raise ValueError(f"depths ({len(x)}) and every arm need equal lengths, got "
                         + ", ".join(f"{k} {len(v)}" for k, v in arms.items()))
    g = np.asarray(list(seeds) if seeds is not None else [None] * len(x), dtype=object)
    main, nums = _g3_against(x, g, arms["plain"], arms["residual"], floor, seeds is not None)
    nums = {"floor": floor, "depths": sorted({int(v) for v in x}),
            "at_floor": {k: int((v <= floor).sum()) for k, v in arms.items()}, **nums}
    if "too few runs" in nums:
        return Decision("G3", "inconclusive", RULES["G3"].text, nums)
    supported, refuted = main.low > 0, main.high < 0 and nums["censored_fits"] == 0
    if "residual_bn" in arms:
        bn, bn_nums = _g3_against(x, g, arms["plain_bn"], arms["residual_bn"], floor,
                                  seeds is not None)
        nums["batch_normed"] = bn_nums
        if "too few runs" in bn_nums:
            return Decision("G3", "inconclusive", RULES["G3"].text, nums)
        cb = arms["residual_bn"]
        keep = cb > floor
        bn_nums["residual_loglog_slope"] = stats.slope_interval(np.log(x[keep]), np.log(cb[keep]),
                                                                groups=g[keep]).as_dict(4)
        supported = supported and bn.low > 0
        refuted = refuted or (bn.high < 0 and bn_nums["censored_fits"] == 0)
    return _decide("G3", supported, refuted, nums)


def _g3_against(x, g, cp, cr, floor, paired):
    """G3's censored fit of plain against one residual arm: (plain - 2 x residual decay interval,
    numbers)."""
    kept, censored = [], 0
    for s in dict.fromkeys(g.tolist()):
        idx = sorted(np.flatnonzero(g == s), key=lambda k: x[k])
        for k in idx:
            kept.append(k)
            if cp[k] <= floor or cr[k] <= floor:
                censored += 1
                break
    kept = np.asarray(kept, dtype=int)
    xs, gs = x[kept], g[kept]
    lp, lr = np.log(np.clip(cp[kept], floor, None)), np.log(np.clip(cr[kept], floor, None))
    usable = [s for s in dict.fromkeys(gs.tolist())
              if len(np.unique(xs[gs == s])) >= 2] if paired else []
    nums = {"seeds_with_two_depths": len(usable), "censored_fits": censored,
            "dropped_below_floor": int(len(x) - len(kept))}
    if len(usable) < needed(G3_MIN_RUNS):
        nums["too few runs"] = (f"{len(usable)} seeds with two depths above the floor (need "
                                f"{needed(G3_MIN_RUNS)})")
        return None, nums
    keep = np.isin(gs, np.asarray(usable, dtype=object))
    xs, gs, lp, lr = xs[keep], gs[keep], lp[keep], lr[keep]

    def decay(y):  # minus the slope, with its interval flipped
        sl = stats.slope_interval(xs, y, groups=gs)
        return stats.Interval(-sl.estimate, -sl.high, -sl.low, sl.n, sl.method)
    dp, dr, dd, d2 = decay(lp), decay(lr), decay(lp - lr), decay(lp - G3_FACTOR * lr)
    nums.update(plain_decay=dp.as_dict(6), residual_decay=dr.as_dict(6),
                plain_minus_residual_decay=dd.as_dict(6),
                plain_minus_2x_residual_decay=d2.as_dict(6))
    return d2, nums


@rule("G4", """After training, at equal depth with batch norm: per seed, the early/late gradient
ratio (RMS weight gradient of the first three convolutions over the last three) of the dense net
against the residual and the plain net of the same seed, as paired differences of log10 ratios with
95% paired t intervals. Supported if both intervals lie above 0 (dense early layers get relatively
more gradient than in either); refuted if either lies below 0; inconclusive otherwise, or when a
training run did not converge.""", per_seed=("dense", "residual",
"plain"))
def g4(dense: Sequence[float], residual: Sequence[float], plain: Sequence[float],
       converged: Iterable[bool] | None = None) -> Decision:
    ld, lr_, lp = log10s(dense), log10s(residual), log10s(plain)
    vs_res, vs_plain = stats.paired_difference(ld, lr_), stats.paired_difference(ld, lp)
    nums = {"dense_minus_residual_log10": vs_res.as_dict(),
            "dense_minus_plain_log10": vs_plain.as_dict(),
            "log10_ratio": {k: stats.mean_interval(v).as_dict() for k, v in
                            (("dense", ld), ("residual", lr_), ("plain", lp))}}
    if (d := _unconverged("G4", converged, nums)) is not None:
        return d
    return _decide("G4", vs_res.low > 0 and vs_plain.low > 0, vs_res.high < 0 or vs_plain.high < 0,
                   nums)


@rule("G5", """Lesions of trained nets: deleting one block (only its parameter-free shortcut
remains) does a damage (test error after minus before, over chance error minus before: 0 is no harm,
1 is chance). Per seed, the median damage over blocks; over seeds, its 95% t interval. Path lengths:
per seed, the gradient-weighted mean path length of the residual net (Veit et al.'s method), with
its 95% t interval, against Veit et al.'s finding that the gradient comes from paths well under a
third of the blocks (5-17 of 54): any ResNet's gradient-weighted mean lies under n/2, the mean of
all 2^n paths, so n/2 tests nothing. Supported if the residual net's median damage lies below 0.2
(barely hurt), the plain net's above 0.5 (ruined) and the path length below n/3. Refuted if the
residual interval lies above 0.2, the plain interval below 0.5 or the path-length interval above n/3
(the gradient is not carried by short paths). Inconclusive otherwise, when a training run did not
converge, or when a net did not learn (mean intact test error above 90% of chance).""",
      per_seed=("residual_damage", "plain_damage", "path_length", "base_err"))
def g5(residual_damage: Sequence[float], plain_damage: Sequence[float],
       path_length: Sequence[float],
       n_blocks: int, base_err: Mapping[str, Sequence[float]] | None = None, chance: float = 0.9,
       converged: Iterable[bool] | None = None) -> Decision:
    r, p = stats.mean_interval(residual_damage), stats.mean_interval(plain_damage)
    diff = stats.paired_difference(plain_damage, residual_damage) if len(plain_damage) == len(
        residual_damage) \
        else None
    pl = stats.mean_interval(path_length)
    half, third = n_blocks / 2, n_blocks / 3
    nums = {"residual_median_damage": r.as_dict(), "plain_median_damage": p.as_dict(),
            "plain_minus_residual_damage": diff.as_dict() if diff else None,
            "grad_weighted_path_length": pl.as_dict(), "mean_path_length": half,
            "short_below": third,
            "blocks": n_blocks,
            "barely_below": G5_BARELY, "ruined_above": G5_RUINED}
    if base_err:
        nums["intact_test_error"] = {k: stats.rate_interval(v).as_dict() for k,
                                     v in base_err.items()}
    if (d := _unconverged("G5", converged, nums)) is not None:
        return d
    if base_err:
        stuck = [k for k, v in base_err.items() if not (len(v) and np.nanmean(v) <= 0.9 * chance)]
        if stuck:
            return Decision("G5", "inconclusive", RULES["G5"].text,
                            {**nums, "did not learn": stuck})
    return _decide("G5", r.high < G5_BARELY and p.low > G5_RUINED and pl.high < third,
                   r.low > G5_BARELY or p.high < G5_RUINED or pl.low > third, nums)


@rule("G6", """Connectivity sweep, ordered from plain through ever denser shortcut spacings to a
dense block, all arms sharing seeds and trained until every one fits its training data; the quantity
is ease of optimisation, the steps a net takes to fit (training error over the last 10 logged steps
at most 2%; fewer is easier), compared by 95% paired t intervals of per-seed differences. Denser
eases, shown: the first step (plain to the sparsest shortcut spacing) gains (interval of plain minus
first spacing above 0) and the densest spacing is better than plain (interval of plain minus densest
above 0), and no step to a denser spacing is shown to hurt (a shown harm breaks "denser eases"; its
absence is never read as a benefit). Up to a point, shown: the last step (densest spacing to dense
block) gains less than the first: the interval of first gain minus last gain lies above 0. Supported
if both are shown. Refuted if the densest spacing is shown worse than plain (interval below 0) or
the last step is shown to gain more than the first (returns grow all the way to the dense block).
Inconclusive otherwise, or when a run did not fit its training absence is never read as a benefit).
Up to a point, shown: the last step (densest spacing to dense block) gains less than the first: the
interval of first gain data (its steps to fit are not measured).""", per_seed=("errors",))
def g6(errors: Mapping[str, Sequence[float]], converged: Iterable[bool] | None = None) -> Decision:
    names = list(errors)
    if len(names) < 3:
        raise ValueError(
            "g6 needs plain, at least one shortcut spacing and the dense block in order; got "
            f"{names}")
    e = {k: np.asarray(v, dtype=float) for k, v in errors.items()}
    spacings, dense = names[:-1], names[-1]
    plain, first, densest = spacings[0], spacings[1], spacings[-1]
    overall = stats.paired_difference(e[plain], e[densest])
    steps = {f"{b} minus {a}": stats.paired_difference(e[b], e[a]) for a,
             b in zip(spacings, spacings[1:])}
    first_gain, last_gain = e[plain] - e[first], e[densest] - e[dense]
    diminishing = stats.paired_difference(first_gain, last_gain)
    nums = {"plain_minus_densest": overall.as_dict(),
            "steps": {k: v.as_dict() for k, v in steps.items()},
            "first_gain_minus_last_gain": diminishing.as_dict(),
            "first_gain": stats.paired_difference(e[plain], e[first]).as_dict(),
            "last_gain": stats.paired_difference(e[densest], e[dense]).as_dict(),
            "per_arm": {k: stats.mean_interval(v).as_dict() for k, v in e.items()}}
    if (d := _unconverged("G6", converged, nums)) is not None:
        return d
    nums["steps_shown_to_hurt"] = [k for k, v in steps.items() if v.low > 0]
    first_step = stats.paired_difference(e[plain], e[first])
    eases = overall.low > 0 and first_step.low > 0 and not nums["steps_shown_to_hurt"]
    return _decide("G6", eases and diminishing.low > 0, overall.high < 0 or diminishing.high < 0,
                   nums)
