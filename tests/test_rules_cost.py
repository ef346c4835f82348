"""skipanalysis.rules.cost: C1-C8 on hand-made measurements, intervals against scipy and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from skipanalysis.rules import core
from skipanalysis.rules import cost as cost_rules

# per-round load wobble shared by interleaved arms
WOBBLE = np.array([1.00, 1.02, 0.98, 1.01, 0.99, 1.03, 0.97])


def test_ratio_interval_against_scipy():
    a = [1.10, 1.25, 1.18, 1.30, 1.22, 1.15]
    b = [1.00, 1.02, 0.99, 1.05, 1.01, 0.98]
    iv = cost_rules.ratio_interval(a, b)
    ci = sps.ttest_rel(np.log(a), np.log(b)).confidence_interval(0.95)
    assert iv.estimate == pytest.approx(math.exp(np.mean(np.log(a) - np.log(b))))
    assert (iv.low, iv.high) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert iv.n == 6
    # a common factor per round (the machine's load) cancels exactly
    assert cost_rules.ratio_interval(2 * WOBBLE, WOBBLE).as_dict()["high"] == pytest.approx(2.0)


def test_quadratic_share_by_hand():
    xs = [2, 4, 8, 16]
    assert cost_rules.quadratic_share(xs, [5 * x + 3 for x in xs])["share"] == pytest.approx(
        0, abs=1e-9)
    assert cost_rules.quadratic_share(xs, [x * x for x in xs])["share"] == pytest.approx(1)
    # y = n + n^2: at n = 16 the square is 256 of 272
    assert cost_rules.quadratic_share(xs, [x + x * x for x in xs])["share"] == pytest.approx(
        256 / 272)


def test_c3():
    n = [2, 4, 8, 12, 16]
    linear = [1000 * x for x in n]
    assert cost_rules.c3(n, [1000 * x + 200 * x * x for x in n], linear).verdict == "supported"
    # dense grows linearly
    assert cost_rules.c3(n, [1000 * x + 1 * x * x for x in n], linear).verdict == "refuted"
    # share 2560/18560
    assert cost_rules.c3(n, [1000 * x + 10 * x * x for x in n], linear).verdict == "inconclusive"
    assert cost_rules.c3(n, [1000 * x + 200 * x * x for x in n],
                         [1000 * x + 200 * x * x for x in n]).verdict == "refuted"
    assert cost_rules.c3([2, 4], [1, 2], [1, 2]).numbers["depths"] == "fewer than 3"


def test_c5():
    block = 10e-3 * WOBBLE
    assert cost_rules.c5(0.01 * block, block, add_ops=1000, block_macs=1e6).verdict == "supported"
    assert cost_rules.c5(0.30 * block, block, 1000, 1e6).verdict == "refuted"
    assert cost_rules.c5(0.10 * block, block, 1000, 1e6).verdict == "inconclusive"
    # the exact count fails: a cheap addition in time cannot carry the claim alone
    d = cost_rules.c5(0.01 * block, block, add_ops=1e5, block_macs=1e6)
    assert d.verdict == "inconclusive" and d.numbers["op_count_check"] == "failed"
    few = cost_rules.c5(0.01 * block[:3], block[:3], 1000, 1e6)
    assert few.verdict == "inconclusive" and "too few paired rounds" in few.numbers


def test_c6_gpu_only():
    r = 0.1 * WOBBLE
    assert cost_rules.c6(1.3 * r, r, "cuda", fewer_flops=True).verdict == "supported"
    assert cost_rules.c6(0.8 * r, r, "cuda", fewer_flops=True).verdict == "refuted"
    noisy = r * np.array([1.05, 0.95, 1.04, 0.96, 1.0, 1.03, 0.97])
    assert cost_rules.c6(noisy, r, "cuda", True).verdict == "inconclusive"
    # no 'despite fewer FLOPs'
    assert cost_rules.c6(1.3 * r, r, "cuda", fewer_flops=False).verdict == "inconclusive"
    cpu = cost_rules.c6(1.3 * r, r, "cpu", True)
    assert cpu.verdict == "not measured here"
    assert cpu.numbers["dense_over_resnet_time"]["estimate"] == pytest.approx(1.3)
    # an old hardware file without rounds
    assert cost_rules.c6(None, None, "cuda", True).verdict == "inconclusive"


def test_c7():
    n = [2, 4, 8, 12, 16]
    ck = [900 * x + 500 for x in n]
    plain = 0.05 * WOBBLE
    assert cost_rules.c7(n, ck, 1.2 * plain, plain).verdict == "supported"
    # linear, but far from a modest cost
    assert cost_rules.c7(n, ck, 2.5 * plain, plain).verdict == "refuted"
    assert cost_rules.c7(n, [900 * x + 300 * x * x for x in n], 1.2 * plain,
                         plain).verdict == "refuted"
    assert cost_rules.c7(n, ck, 1.7 * plain, plain).verdict == "inconclusive"
    d = cost_rules.c7(n, ck, 1.2 * plain, plain, plain_bytes_at_max=4 * ck[-1])
    assert d.numbers["memory_saving_at_max"] == pytest.approx(0.75)


def test_c8():
    load, step = 0.05 * WOBBLE, 0.2 * WOBBLE
    assert cost_rules.c8(0.4 * load, load, 1.3 * step, step).verdict == "supported"
    # DenseNet also trains faster
    assert cost_rules.c8(0.4 * load, load, 0.8 * step, step).verdict == "refuted"
    # DenseNet loads slower
    assert cost_rules.c8(1.5 * load, load, 1.3 * step, step).verdict == "refuted"
    noisy = step * np.array([1.05, 0.95, 1.04, 0.96, 1.0, 1.03, 0.97])
    assert cost_rules.c8(0.4 * load, load, noisy, step).verdict == "inconclusive"
    # load side not measured
    assert cost_rules.c8(None, None, 1.3 * step, step).verdict == "inconclusive"


def test_every_new_rule_is_registered_with_text():
    for cid in ("C3", "C5", "C6", "C7", "C8", "T1", "T2", "T3", "T4"):
        assert cid in core.RULES and len(core.text(cid)) > 100


def test_c1_c2_c4_exact_counts_against_published_numbers():
    # torchvision's published parameter counts: ResNet-50 25,557,032, DenseNet-121 7,978,856 (ratio
    # 0.3122)
    d = cost_rules.c1(25_557_032, 7_978_856)
    assert d.verdict == "verified" and d.numbers["ratio"] == pytest.approx(0.31220, abs=1e-5)
    # a half is not "about a third"
    assert cost_rules.c1(25_557_032, 25_557_032 // 2).verdict == "failed"
    # Huang et al. Table 1 at 224 px: DenseNet-121 2.9 GFLOPs (multiply-adds) against ResNet-50's
    # 4.1
    assert cost_rules.c2([2.9, 5.8], [4.1, 8.2], ["GMAC", "GFLOP"]).verdict == "verified"
    assert cost_rules.c2([2.9, 8.3], [4.1, 8.2], ["GMAC", "GFLOP"]).verdict == "failed"
    # k = 12: inputs 24, 36, 48 maps; the 1x1 (in -> 4k) share of in*4k + 4k*k*9 rises with the
    # input width
    k, widths = 12, [24, 36, 48]
    shares = [w * 4 * k / (w * 4 * k + 4 * k * k * 9) for w in widths]
    assert cost_rules.c4(widths, shares, k).verdict == "verified"
    assert cost_rules.c4([24, 36, 50], shares, k).verdict == "failed"
    assert cost_rules.c4(widths, shares[::-1], k).verdict == "failed"
