"""Notebook 04's and 05's rules on hand-made numbers: supported, refuted and inconclusive, plus independent checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from skipanalysis import rules

WOBBLE = np.array([1.00, 1.02, 0.98, 1.01, 0.99, 1.03, 0.97])  # per-round load wobble shared by interleaved arms


# --- notebook 04 ------------------------------------------------------------------------------------------------------

def test_ratio_interval_against_scipy():
    a = [1.10, 1.25, 1.18, 1.30, 1.22, 1.15]
    b = [1.00, 1.02, 0.99, 1.05, 1.01, 0.98]
    iv = rules.ratio_interval(a, b)
    ci = sps.ttest_rel(np.log(a), np.log(b)).confidence_interval(0.95)
    assert iv.estimate == pytest.approx(math.exp(np.mean(np.log(a) - np.log(b))))
    assert (iv.low, iv.high) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert iv.n == 6
    # a common factor per round (the machine's load) cancels exactly
    assert rules.ratio_interval(2 * WOBBLE, WOBBLE).as_dict()["high"] == pytest.approx(2.0)


def test_quadratic_share_by_hand():
    xs = [2, 4, 8, 16]
    assert rules.quadratic_share(xs, [5 * x + 3 for x in xs])["share"] == pytest.approx(0, abs=1e-9)
    assert rules.quadratic_share(xs, [x * x for x in xs])["share"] == pytest.approx(1)
    # y = n + n^2: at n = 16 the square is 256 of 272
    assert rules.quadratic_share(xs, [x + x * x for x in xs])["share"] == pytest.approx(256 / 272)


def test_c3():
    n = [2, 4, 8, 12, 16]
    linear = [1000 * x for x in n]
    assert rules.c3(n, [1000 * x + 200 * x * x for x in n], linear).verdict == "supported"
    assert rules.c3(n, [1000 * x + 1 * x * x for x in n], linear).verdict == "refuted"  # dense grows linearly
    assert rules.c3(n, [1000 * x + 10 * x * x for x in n], linear).verdict == "inconclusive"  # share 2560/18560
    assert rules.c3(n, [1000 * x + 200 * x * x for x in n], [1000 * x + 200 * x * x for x in n]).verdict == "refuted"
    assert rules.c3([2, 4], [1, 2], [1, 2]).numbers["depths"] == "fewer than 3"


def test_c5():
    block = 10e-3 * WOBBLE
    assert rules.c5(0.01 * block, block, add_ops=1000, block_macs=1e6).verdict == "supported"
    assert rules.c5(0.30 * block, block, 1000, 1e6).verdict == "refuted"
    assert rules.c5(0.10 * block, block, 1000, 1e6).verdict == "inconclusive"
    # the exact count fails: a cheap addition in time cannot carry the claim alone
    d = rules.c5(0.01 * block, block, add_ops=1e5, block_macs=1e6)
    assert d.verdict == "inconclusive" and d.numbers["op_count_check"] == "failed"
    few = rules.c5(0.01 * block[:3], block[:3], 1000, 1e6)
    assert few.verdict == "inconclusive" and "too few paired rounds" in few.numbers


def test_c6_gpu_only():
    r = 0.1 * WOBBLE
    assert rules.c6(1.3 * r, r, "cuda", fewer_flops=True).verdict == "supported"
    assert rules.c6(0.8 * r, r, "cuda", fewer_flops=True).verdict == "refuted"
    noisy = r * np.array([1.05, 0.95, 1.04, 0.96, 1.0, 1.03, 0.97])
    assert rules.c6(noisy, r, "cuda", True).verdict == "inconclusive"
    assert rules.c6(1.3 * r, r, "cuda", fewer_flops=False).verdict == "inconclusive"  # no 'despite fewer FLOPs'
    cpu = rules.c6(1.3 * r, r, "cpu", True)
    assert cpu.verdict == "not measured here"
    assert cpu.numbers["dense_over_resnet_time"]["estimate"] == pytest.approx(1.3)
    assert rules.c6(None, None, "cuda", True).verdict == "inconclusive"  # an old hardware file without rounds


def test_c7():
    n = [2, 4, 8, 12, 16]
    ck = [900 * x + 500 for x in n]
    plain = 0.05 * WOBBLE
    assert rules.c7(n, ck, 1.2 * plain, plain).verdict == "supported"
    assert rules.c7(n, ck, 2.5 * plain, plain).verdict == "refuted"  # linear, but far from a modest cost
    assert rules.c7(n, [900 * x + 300 * x * x for x in n], 1.2 * plain, plain).verdict == "refuted"
    assert rules.c7(n, ck, 1.7 * plain, plain).verdict == "inconclusive"
    d = rules.c7(n, ck, 1.2 * plain, plain, plain_bytes_at_max=4 * ck[-1])
    assert d.numbers["memory_saving_at_max"] == pytest.approx(0.75)


def test_c8():
    load, step = 0.05 * WOBBLE, 0.2 * WOBBLE
    assert rules.c8(0.4 * load, load, 1.3 * step, step).verdict == "supported"
    assert rules.c8(0.4 * load, load, 0.8 * step, step).verdict == "refuted"  # DenseNet also trains faster
    assert rules.c8(1.5 * load, load, 1.3 * step, step).verdict == "refuted"  # DenseNet loads slower
    noisy = step * np.array([1.05, 0.95, 1.04, 0.96, 1.0, 1.03, 0.97])
    assert rules.c8(0.4 * load, load, noisy, step).verdict == "inconclusive"
    assert rules.c8(None, None, 1.3 * step, step).verdict == "inconclusive"  # load side not measured


# --- notebook 05 ------------------------------------------------------------------------------------------------------

def test_rate_difference_against_newcombe_1998():
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score)
    iv = rules.rate_difference(56, 70, 48, 80)
    assert (round(iv.low, 4), round(iv.high, 4)) == (0.0524, 0.3339)
    iv = rules.rate_difference(9, 10, 3, 10)
    assert (round(iv.low, 4), round(iv.high, 4)) == (0.1705, 0.8090)
    assert rules.rate_difference(5, 5, 0, 5).low > 0  # 5/5 against 0/5 is decisive at n = 5


def _t1_points(post_slope, pre_slope, seeds=6, noise=0.03, post_scale=5.0):
    rng = np.random.default_rng(0)
    depths, post, pre = [], [], []
    for d in (6, 12, 24):
        for _ in range(seeds):
            depths.append(d)
            post.append(post_scale * d ** post_slope * math.exp(noise * rng.standard_normal()))
            pre.append(1.0 * d ** pre_slope * math.exp(noise * rng.standard_normal()))
    deep = [i for i, d in enumerate(depths) if d == 24]
    return dict(depths=depths, post=post, pre=pre, post_deepest=[post[i] for i in deep],
                pre_deepest=[pre[i] for i in deep], n_boot=500)


def test_t1():
    assert rules.t1(**_t1_points(0.0, -0.5)).verdict == "supported"
    assert rules.t1(**_t1_points(-0.5, -0.5)).verdict == "refuted"  # post-norm shrinks as fast
    assert rules.t1(**_t1_points(0.0, 0.1)).verdict == "refuted"  # pre-norm grows
    assert rules.t1(**_t1_points(0.0, -0.5, noise=1.0)).verdict == "inconclusive"  # seed noise swamps the slopes
    assert rules.t1(**_t1_points(0.0, -0.5, post_scale=0.1)).verdict == "inconclusive"  # post-norm not larger
    few = rules.t1(**_t1_points(0.0, -0.5, seeds=3))
    assert few.verdict == "inconclusive" and "too few" in few.numbers
    # the slope is the least-squares slope of log norm on log depth (numpy's polyfit, independently)
    pts = _t1_points(0.0, -0.5)
    d = rules.t1(**pts)
    assert d.numbers["slope_pre"]["estimate"] == pytest.approx(
        np.polyfit(np.log(pts["depths"]), np.log(pts["pre"]), 1)[0], abs=1e-4)


def _runs(spec, **fixed):
    """``spec``: {(norm, lr, warmup): (trained, n)}; the first ``trained`` runs train, the others are stuck at a
    plateau (converged)."""
    out = []
    for (norm, key, wu), (k, n) in spec.items():
        for s in range(n):
            out.append({"norm": norm, "lr": key, "depth": key, "warmup": wu, "seed": s, "trained": s < k,
                        "diverged": False, "converged": True, **fixed})
    return out


def test_t2():
    ok = _runs({("post", 0.003, 0): (0, 5), ("post", 0.003, 50): (5, 5), ("pre", 0.003, 0): (5, 5),
                ("post", 0.001, 0): (5, 5), ("post", 0.001, 50): (5, 5), ("pre", 0.001, 0): (5, 5)})
    assert rules.t2(ok).verdict == "supported"
    never = _runs({("post", 0.003, 0): (5, 5), ("post", 0.003, 50): (5, 5), ("pre", 0.003, 0): (5, 5)})
    assert rules.t2(never).verdict == "refuted"  # post-norm trains without warm-up at every rate
    pre_bad = _runs({("post", 0.003, 0): (0, 5), ("post", 0.003, 50): (5, 5), ("pre", 0.003, 0): (0, 5)})
    assert rules.t2(pre_bad).verdict == "refuted"
    mixed = _runs({("post", 0.003, 0): (3, 5), ("post", 0.003, 50): (5, 5), ("pre", 0.003, 0): (5, 5)})
    assert rules.t2(mixed).verdict == "inconclusive"  # 3/5 vs 5/5 is not a clear warm-up effect
    few = _runs({("post", 0.003, 0): (0, 2), ("post", 0.003, 50): (2, 2), ("pre", 0.003, 0): (2, 2)})
    assert rules.t2(few).verdict == "inconclusive" and "fewer than 5 seeds" in rules.t2(few).numbers
    ok[0]["converged"] = False  # a stuck post-norm run whose loss was still falling
    d = rules.t2(ok)
    assert d.verdict == "inconclusive" and d.numbers["not converged"].startswith("1 of 30")


def test_t3():
    runs = _runs({("post", 6, 0): (5, 5), ("pre", 6, 0): (5, 5), ("post", 24, 0): (0, 5), ("pre", 24, 0): (5, 5)})
    d = rules.t3(runs)
    assert d.verdict == "supported" and d.numbers["per_depth"]["24"]["post_diverged"] == "0/5"
    both = _runs({("post", 6, 0): (5, 5), ("pre", 6, 0): (5, 5), ("post", 24, 0): (5, 5), ("pre", 24, 0): (5, 5)})
    assert rules.t3(both).verdict == "inconclusive"  # the range is too shallow to tell
    worse = _runs({("post", 6, 0): (5, 5), ("pre", 6, 0): (5, 5), ("post", 24, 0): (5, 5), ("pre", 24, 0): (0, 5)})
    assert rules.t3(worse).verdict == "refuted"
    runs[-6]["converged"] = False  # post-norm depth 24, stuck, still falling
    assert rules.t3(runs).numbers["not converged"].startswith("1 of 20")


def test_t4():
    far, dist, init = [0.7, 0.65, 0.72, 0.68, 0.7, 0.66], [7.5, 7.8, 7.2, 7.9, 7.6, 7.4], [5.3] * 6
    ok = [True] * 6
    assert rules.t4(far, dist, init, ok).verdict == "supported"
    assert rules.t4([0.1, 0.12, 0.08, 0.11, 0.1, 0.09], [2.0] * 6, init, ok).verdict == "refuted"
    assert rules.t4(far, [5.3, 5.2, 5.4, 5.3, 5.35, 5.25], init, ok).verdict == "inconclusive"  # no farther than init
    few = rules.t4(far, dist, init, [True, True, False, False, True, True])
    assert few.verdict == "inconclusive" and few.numbers["trained_models"] == 4
    # the far share's interval is a t interval over models kept inside [0, 1] (SciPy's t, independently)
    iv = rules.t4(far, dist, init, ok).numbers["far_share"]
    half = sps.t.ppf(0.975, 5) * np.std(far, ddof=1) / math.sqrt(6)
    assert (iv["low"], iv["high"]) == pytest.approx((np.mean(far) - half, np.mean(far) + half), abs=1e-4)


def test_every_new_rule_is_registered_with_text():
    for cid in ("C3", "C5", "C6", "C7", "C8", "T1", "T2", "T3", "T4"):
        assert cid in rules.RULES and len(rules.text(cid)) > 100


def test_c1_c2_c4_exact_counts_against_published_numbers():
    # torchvision's published parameter counts: ResNet-50 25,557,032, DenseNet-121 7,978,856 (ratio 0.3122)
    d = rules.c1(25_557_032, 7_978_856)
    assert d.verdict == "verified" and d.numbers["ratio"] == pytest.approx(0.31220, abs=1e-5)
    assert rules.c1(25_557_032, 25_557_032 // 2).verdict == "failed"  # a half is not "about a third"
    # Huang et al. Table 1 at 224 px: DenseNet-121 2.9 GFLOPs (multiply-adds) against ResNet-50's 4.1
    assert rules.c2([2.9, 5.8], [4.1, 8.2], ["GMAC", "GFLOP"]).verdict == "verified"
    assert rules.c2([2.9, 8.3], [4.1, 8.2], ["GMAC", "GFLOP"]).verdict == "failed"
    # k = 12: inputs 24, 36, 48 maps; the 1x1 (in -> 4k) share of in*4k + 4k*k*9 rises with the input width
    k, widths = 12, [24, 36, 48]
    shares = [w * 4 * k / (w * 4 * k + 4 * k * k * 9) for w in widths]
    assert rules.c4(widths, shares, k).verdict == "verified"
    assert rules.c4([24, 36, 50], shares, k).verdict == "failed"
    assert rules.c4(widths, shares[::-1], k).verdict == "failed"
