"""Rules G1-G6 (notebook 02) on hand-made numbers: supported, refuted and inconclusive, with numbers
checked by hand and against SciPy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from skipanalysis.rules import gradient_flow
from skipanalysis.rules.gradient_flow import log10s

# per-seed multiplicative wobble shared by paired arms
WOBBLE = np.array([1.00, 1.05, 0.95, 1.02, 0.98])
NOISY = np.array([1.0, 30.0, 0.03, 10.0, 0.1])  # two orders of magnitude of seed noise


def test_log10s_drops_what_has_no_logarithm():
    out = log10s([100, 0.01, 0, -1, float("inf")])
    assert out[:2] == [2.0, -2.0] and all(math.isnan(v) for v in out[2:])


def test_g1():
    alive = {"init, depth 56": 5 * WOBBLE, "half-way": 0.8 * WOBBLE, "end": 1.2 * WOBBLE}
    assert gradient_flow.g1(alive).verdict == "supported"
    vanished = {**alive, "end": 0.001 * WOBBLE}
    assert gradient_flow.g1(vanished).verdict == "refuted"
    # interval straddles 0.1
    assert gradient_flow.g1({**alive, "end": 0.3 * NOISY}).verdict == "inconclusive"
    # one seed bounds nothing
    assert gradient_flow.g1({**alive, "end": [0.5]}).verdict == "inconclusive"
    d = gradient_flow.g1(alive, converged=[True] * 4 + [False])
    assert d.verdict == "inconclusive" and d.numbers["not converged"] == "1 of 5 runs"
    # a 2,450x explosion at initialisation (what notebook 02 measured at depth 56) is not healthy:
    # refuted,
    # where the one-sided rule read it as "does not vanish"
    exploded = gradient_flow.g1({**alive, "init, depth 56": 2450 * WOBBLE})
    assert exploded.verdict == "refuted"
    assert exploded.numbers["broken_holm"]["adjusted_p"]["init, depth 56: exploded"] < 0.05
    # outside 10, not 100
    assert gradient_flow.g1({**alive, "init, depth 56": 30 * WOBBLE}).verdict == "inconclusive"


def test_g1_holm_by_hand():
    # one point of two, log10 ratios (-2.2, -2.5, -2.3, -2.4, -2.1): one-sided t p of mean < -2 is
    # p1;
    # Holm over the 4 tests (2 points x 2 sides) multiplies the smallest p by 4
    logs = np.array([-2.2, -2.5, -2.3, -2.4, -2.1])
    d = gradient_flow.g1({"a": 10 ** logs, "b": np.ones(5) * WOBBLE})
    p1 = sp.ttest_1samp(logs + 2, 0, alternative="less").pvalue
    assert d.numbers["broken_holm"]["adjusted_p"]["a: vanished"] == pytest.approx(min(1, 4 * p1),
                                                                                  abs=1e-5)
    assert d.verdict == ("refuted" if 4 * p1 < 0.05 else "inconclusive")


def test_g1_interval_by_scipy():
    r = [0.5, 2.0, 1.0, 4.0, 0.25]
    d = gradient_flow.g1({"init": r})
    iv = d.numbers["log10_ratio"]["init"]
    lo, hi = sp.t.interval(0.95, len(r) - 1, loc=np.mean(np.log10(r)), scale=sp.sem(np.log10(r)))
    assert (iv["low"], iv["high"]) == (pytest.approx(lo, abs=1e-4), pytest.approx(hi, abs=1e-4))
    # geometric mean by hand: (0.5 * 2 * 1 * 4 * 0.25) ** (1/5) = 1
    assert d.numbers["geometric_mean_ratio"]["init"] == pytest.approx(1.0)


def test_g2():
    shallow = 1e-3 * WOBBLE
    assert gradient_flow.g2(shallow, 0.01 * shallow * WOBBLE, shallow,
                            1.2 * shallow * WOBBLE).verdict == "supported"
    # plain kept
    assert gradient_flow.g2(shallow, 0.9 * shallow * WOBBLE, shallow,
                            1.2 * shallow).verdict == "refuted"
    # residual shrank too
    assert gradient_flow.g2(shallow, 0.01 * shallow, shallow, 0.01 * shallow).verdict == "refuted"
    assert gradient_flow.g2(shallow, 0.3 * shallow * WOBBLE, shallow,
                            shallow).verdict == "inconclusive"
    # a residual gradient that grows 50x with depth is not "kept": refuted (two-sided band), once
    # supported
    assert gradient_flow.g2(shallow, 0.01 * shallow * WOBBLE, shallow,
                            50 * shallow * WOBBLE).verdict == "refuted"
    assert gradient_flow.g2(shallow, 0.01 * shallow * WOBBLE, shallow,
                            4 * shallow * WOBBLE).verdict == "inconclusive"
    # the geometric mean of deep/shallow, by scipy
    deep = shallow * np.array([0.1, 0.2, 0.05, 0.1, 0.4])
    d = gradient_flow.g2(shallow, deep, shallow, shallow)
    assert d.numbers["plain_deep_over_shallow"] == pytest.approx(sp.gmean(deep / shallow), rel=1e-9)
    with pytest.raises(ValueError, match="equal lengths"):
        gradient_flow.g2(shallow, deep[:3], shallow, shallow)


def _shatter(plain_decay: float, residual_decay: float, seeds: int = 5, noise: float = 0.05,
             start: float = 0.9,
             depths=(8, 20, 32, 56)):
    rng = np.random.default_rng(0)
    d = np.tile(depths, seeds)
    labels = np.repeat(np.arange(seeds), len(depths))
    eps = rng.normal(0, noise, size=(2, len(d)))
    plain = start * np.exp(-plain_decay * d + eps[0])
    residual = start * np.exp(-residual_decay * d + eps[1])
    return d.tolist(), plain.tolist(), residual.tolist(), 0.01, labels.tolist()


def test_g3():
    assert gradient_flow.g3(*_shatter(0.05, 0.005)).verdict == "supported"
    # faster, but far from twice as fast
    assert gradient_flow.g3(*_shatter(0.012, 0.010)).verdict == "refuted"
    assert gradient_flow.g3(*_shatter(0.02, 0.01, noise=1.0)).verdict == "inconclusive"
    few = gradient_flow.g3(*_shatter(0.05, 0.005, seeds=2))
    assert few.verdict == "inconclusive" and "too few runs" in few.numbers
    depths, plain, residual, _, _ = _shatter(0.05, 0.005)
    # no seeds: the fit cannot be paired
    assert gradient_flow.g3(depths, plain, residual).verdict == "inconclusive"
    with pytest.raises(ValueError, match="floor"):
        gradient_flow.g3(depths, plain, residual, floor=0)


def test_g3_slopes_by_scipy_and_the_floor():
    depths, plain, residual, _, seeds = _shatter(0.05, 0.005)
    d = gradient_flow.g3(depths, plain, residual, 1e-3, seeds)
    lp, lr = np.log(plain), np.log(residual)
    # every seed has every depth, so the mean of per-seed slopes is the pooled least-squares slope
    assert d.numbers["plain_decay"]["estimate"] == pytest.approx(-sp.linregress(depths, lp).slope,
                                                                 abs=1e-6)
    per_seed = [-sp.linregress(np.asarray(depths)[np.asarray(seeds) == s],
                               (lp - 2 * lr)[np.asarray(seeds) == s]).slope
                for s in range(5)]
    lo, hi = sp.t.interval(0.95, 4, loc=np.mean(per_seed), scale=sp.sem(per_seed))
    got = d.numbers["plain_minus_2x_residual_decay"]
    assert (got["low"], got["high"]) == (pytest.approx(lo, abs=1e-5), pytest.approx(hi, abs=1e-5))
    assert d.numbers["censored_fits"] == 0 and d.numbers["at_floor"] == {"plain": 0, "residual": 0}


def test_g3_floor_no_longer_flattens_the_plain_decay_into_a_false_refutation():
    # plain correlation falls fast (0.15 per layer) and sits at the 0.01 floor from depth 32 on;
    # residual decays at
    # 0.01. Clipping every point at the floor and fitting through all four depths flattened the
    # plain decay to about
    # 0.08 and could read "not twice as fast"; the censored fit stops at the first floor point
    depths, plain, residual, floor, seeds = _shatter(0.15, 0.01, noise=0.02, start=0.9)
    d = gradient_flow.g3(depths, plain, residual, floor, seeds)
    assert d.numbers["censored_fits"] == 5 and d.numbers["dropped_below_floor"] == 5
    assert d.verdict == "supported"
    clipped = np.log(np.clip(plain, floor, None))
    assert -sp.linregress(depths, clipped).slope < 0.1  # the old fit's flattened decay
    # censoring protects only support: with the floor reached, a slow-looking fit cannot refute
    depths, plain, residual, floor, seeds = _shatter(0.03, 0.018, noise=0.02, start=0.9,
                                                     depths=(8, 20, 140, 200))
    slow = gradient_flow.g3(depths, plain, residual, floor, seeds)
    assert slow.numbers["censored_fits"] > 0 and slow.verdict == "inconclusive"


def test_g3_batch_normed_arms():
    depths, plain, residual, floor, seeds = _shatter(0.05, 0.005)
    d = np.asarray(depths, dtype=float)
    noise = np.random.default_rng(1).normal(0, 0.05, (2, len(d)))
    # batch-normed feedforward nets shatter too
    plain_bn = (0.9 * np.exp(-0.12 * d + noise[0])).tolist()
    # Balduzzi et al.'s batch-normed ResNet
    sublinear = (0.9 * (d / 8) ** -0.5 * np.exp(noise[1])).tolist()
    ok = gradient_flow.g3(depths, plain, residual, floor, seeds, plain_bn=plain_bn,
                          residual_bn=sublinear)
    assert ok.verdict == "supported"
    # the log-log slope, independently: numpy's pooled fit (every seed has every depth, so it equals
    # the mean slope)
    slope = ok.numbers["batch_normed"]["residual_loglog_slope"]["estimate"]
    assert slope == pytest.approx(np.polyfit(np.log(d), np.log(sublinear), 1)[0],
                                  abs=1e-3) and -0.6 < slope < -0.4
    # a batch-normed ResNet whose gradients shatter as fast as the batch-normed plain net's refutes,
    # even with the
    # regime without batch norm supporting
    # (decays slow enough that no fit reaches the floor: a censored fit cannot refute)
    slow_plain = (0.9 * np.exp(-0.04 * d + noise[0])).tolist()
    shattered = (0.9 * np.exp(-0.035 * d + noise[1])).tolist()
    assert gradient_flow.g3(depths, plain, residual, floor, seeds, plain_bn=slow_plain,
                            residual_bn=shattered).verdict \
        == "refuted"
    with pytest.raises(ValueError, match="residual_bn 3"):
        gradient_flow.g3(depths, plain, residual, floor, seeds, plain_bn=plain_bn,
                         residual_bn=sublinear[:3])
    with pytest.raises(ValueError, match="both batch-normed arms"):
        gradient_flow.g3(depths, plain, residual, floor, seeds, residual_bn=sublinear)


def test_g4():
    assert gradient_flow.g4(1.0 * WOBBLE, 0.3 * WOBBLE, 0.2 * WOBBLE).verdict == "supported"
    # below residual
    assert gradient_flow.g4(0.25 * WOBBLE, 0.3 * WOBBLE[::-1], 0.2 * WOBBLE).verdict == "refuted"
    assert gradient_flow.g4(0.3 * NOISY, 0.3 * WOBBLE, 0.3 * WOBBLE).verdict == "inconclusive"
    d = gradient_flow.g4(1.0 * WOBBLE, 0.3 * WOBBLE, 0.2 * WOBBLE, converged=[True, False])
    assert d.verdict == "inconclusive" and "not converged" in d.numbers


def test_g4_paired_interval_by_scipy():
    dense, res = np.array([1.0, 2.0, 0.5, 1.5, 0.8]), np.array([0.3, 0.5, 0.2, 0.3, 0.4])
    d = gradient_flow.g4(dense, res, res)
    diff = np.log10(dense) - np.log10(res)
    ci = sp.ttest_rel(np.log10(dense), np.log10(res)).confidence_interval(0.95)
    got = d.numbers["dense_minus_residual_log10"]
    assert got["estimate"] == pytest.approx(diff.mean(), abs=1e-4)
    assert (got["low"], got["high"]) == (pytest.approx(ci.low, abs=1e-4),
                                         pytest.approx(ci.high, abs=1e-4))


def test_g5():
    res, plain = 0.05 + 0.01 * (WOBBLE - 1), 0.9 + 0.05 * (WOBBLE - 1)
    paths, base = 2.4 * WOBBLE, {"plain": [0.4] * 5, "residual": [0.35] * 5}
    assert gradient_flow.g5(res, plain, paths, 9, base).verdict == "supported"
    # residual badly hurt
    assert gradient_flow.g5(0.4 * WOBBLE, plain, paths, 9, base).verdict == "refuted"
    # plain not ruined
    assert gradient_flow.g5(res, 0.2 * WOBBLE, paths, 9, base).verdict == "refuted"
    # gradient from long paths
    assert gradient_flow.g5(res, plain, 6.0 * WOBBLE, 9, base).verdict == "refuted"
    # realistic: a gradient-weighted mean of 4 of 9 blocks is under n/2 (4.5), which any ResNet
    # gives, but above
    # Veit et al.'s third (3): refuted, where the old n/2 test supported it
    assert gradient_flow.g5(res, plain, 4.0 * WOBBLE, 9, base).verdict == "refuted"
    # straddles the threshold
    assert gradient_flow.g5(0.2 * WOBBLE, plain, paths, 9, base).verdict == "inconclusive"
    stuck = gradient_flow.g5(res, plain, paths, 9, {"plain": [0.89] * 5, "residual": [0.35] * 5})
    assert stuck.verdict == "inconclusive" and stuck.numbers["did not learn"] == ["plain"]
    assert gradient_flow.g5(res, plain, paths, 9, base,
                            converged=[True, False]).verdict == "inconclusive"
    # hand-worked: the mean path length of all 2^9 paths is 9/2
    assert gradient_flow.g5(res, plain, paths, 9).numbers["mean_path_length"] == 4.5


def test_g6():
    shared = 0.01 * (WOBBLE - 1)
    base = {"plain": 0.50, "every 4": 0.40, "every 2": 0.36, "every 1": 0.34, "dense": 0.335}
    errs = {k: v + shared for k, v in base.items()}
    assert gradient_flow.g6(errs).verdict == "supported"
    worse = {**errs, "every 1": 0.6 + shared}
    assert gradient_flow.g6(worse).verdict == "refuted"  # densest spacing worse than plain
    growing = {**errs, "dense": 0.1 + shared}
    assert gradient_flow.g6(growing).verdict == "refuted"  # last step gains more than the first
    noisy = {k: v + 0.1 * np.array([1, -1, 0.5, -0.5, 0]) * (i % 2 * 2 - 1) for i,
             (k, v) in enumerate(base.items())}
    assert gradient_flow.g6(noisy).verdict == "inconclusive"
    # the first step's gain not shown (plain 0.50 to 0.497 within noise) though the densest beats
    # plain: a gain
    # is shown only overall, and the old rule (no harm shown) would have supported it
    unshown = {**errs, "every 4": 0.497 + 0.02 * np.array([1, -1, 0.5, -0.5, 0]),
               "every 2": 0.43 + shared}
    numbers = gradient_flow.g6(unshown).numbers
    assert numbers["first_gain"]["low"] < 0 < numbers["plain_minus_densest"]["low"]
    assert gradient_flow.g6(unshown).verdict == "inconclusive"
    hurt = {**errs, "every 2": 0.45 + shared}  # a middle step hurts: not monotone, not supported
    assert gradient_flow.g6(hurt).verdict == "inconclusive"
    assert gradient_flow.g6(errs, converged=[True, False]).verdict == "inconclusive"
    with pytest.raises(ValueError, match="dense block"):
        gradient_flow.g6({"plain": [0.5], "dense": [0.4]})


def test_steps_to_fit_by_hand_and_g6_on_realistic_steps():
    from skipanalysis.studies import gradient_flow as gr

    # errors of 12 logged steps: the mean over the last 10 first falls to 2% at step 11 (0-based):
    # fits after 12
    err = [0.5, 0.3] + [0.02] * 8 + [0.0, 0.0]
    h = pd.DataFrame({"step": range(12), "err": err})
    assert gr.steps_to_fit(h, 0.02, 10) == 12.0  # steps 2..11: eight 0.02s and two 0s = 0.016
    assert math.isnan(gr.steps_to_fit(h.assign(err=0.5), 0.02, 10))  # never fits
    # 8-layer chains at 8 px, 300 steps: all fit; denser spacings fit sooner, then a saturating
    # dense step
    shared = 5 * (WOBBLE - 1)
    steps = {"plain": 220 + shared, "every 4": 180 + shared, "every 1": 150 + shared,
             "dense": 148 + shared}
    assert gradient_flow.g6(steps).verdict == "supported"
    # the densest spacing fits later than the plain chain
    slower = {**steps, "every 1": 260 + shared}
    assert gradient_flow.g6(slower).verdict == "refuted"


def test_g6_gains_by_hand():
    errs = {"plain": [0.5, 0.6, 0.55], "every 2": [0.4, 0.45, 0.5], "dense": [0.38, 0.40, 0.45]}
    d = gradient_flow.g6(errs)
    # first gain per seed (0.1, 0.15, 0.05), last gain (0.02, 0.05, 0.05): difference (0.08, 0.10,
    # 0.0), mean 0.06
    assert d.numbers["first_gain_minus_last_gain"]["estimate"] == pytest.approx(0.06, abs=1e-4)
    assert d.numbers["plain_minus_densest"]["estimate"] == pytest.approx(0.1, abs=1e-4)
