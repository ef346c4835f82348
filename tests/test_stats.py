"""Intervals and margin tests: hand-worked values, SciPy as a second source, and coverage on
simulated data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from skipanalysis import stats


def test_t_interval_by_hand():
    iv = stats.mean_interval([1.0, 2.0, 3.0])
    # mean 2, s = 1, t_{0.975,2} = 4.303 (printed tables) -> half-width 4.303 / sqrt(3) = 2.484
    assert iv.estimate == 2 and iv.n == 3
    assert iv.high - 2 == pytest.approx(4.303 / math.sqrt(3), abs=1e-3)
    assert stats.t_critical(10) == pytest.approx(2.228, abs=1e-3)


def test_rate_interval_stays_in_unit_range():
    iv = stats.rate_interval([0.0, 0.02, 0.9])
    assert 0 <= iv.low <= iv.estimate <= iv.high <= 1
    assert "within [0, 1]" in iv.method
    one = stats.rate_interval([0.3])
    assert (one.low, one.high) == (0.0, 1.0) and one.n == 1
    assert stats.rate_interval([0.2, float("nan"), 0.4]).n == 2  # a diverged run is not averaged in


def test_wilson_against_a_worked_example():
    # Brown, Cai & DasGupta (2001) style check: 0 successes in 10 -> [0, 0.2775]; 5 of 10 ->
    # [0.2366, 0.7634]
    iv = stats.wilson(0, 10)
    assert iv.low == 0 and iv.high == pytest.approx(0.2775, abs=1e-4)
    iv = stats.wilson(5, 10)
    assert (iv.low, iv.high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    with pytest.raises(ValueError, match="successes"):
        stats.wilson(11, 10)


def test_wilson_ends_at_zero_and_all_successes_contain_the_estimate():
    # rounding once put the lower end of 0/7 at 5.6e-17, above its estimate 0
    for n in range(1, 60):
        assert stats.wilson(0, n).low == 0.0 and stats.wilson(n, n).high == 1.0


def test_wilson_matches_scipy():
    ci = sp.binomtest(37, 200).proportion_ci(0.95, method="wilson")
    iv = stats.wilson(37, 200)
    assert (iv.low, iv.high) == (pytest.approx(ci.low, abs=1e-9), pytest.approx(ci.high, abs=1e-9))


def test_coverage_of_t_and_wilson_intervals_on_simulated_data():
    rng = np.random.default_rng(0)
    true = 0.12
    hits_t = sum(stats.rate_interval(np.clip(rng.normal(true, 0.03, 5), 0, 1)).contains(true)
                 for _ in range(2000))
    hits_w = sum(stats.wilson(int(rng.binomial(500, true)), 500).contains(true)
                 for _ in range(2000))
    assert 0.93 <= hits_t / 2000 <= 0.97
    assert 0.93 <= hits_w / 2000 <= 0.97


def test_paired_difference_removes_the_shared_seed_effect():
    seed_effect = np.array([0.10, 0.30, 0.20, 0.40, 0.25])
    a, b = seed_effect + 0.02 + np.array([0.001, -0.001, 0.002, 0, -0.002]), seed_effect
    iv = stats.paired_difference(a, b)
    assert iv.low > 0  # paired: a is clearly worse by about 0.02
    assert stats.mean_interval(a).low < stats.mean_interval(b).high  # unpaired intervals overlap
    res = sp.ttest_rel(a, b)
    t = iv.estimate / ((iv.high - iv.estimate) / stats.t_critical(4))
    assert t == pytest.approx(res.statistic, rel=1e-9)


def test_noninferiority_three_outcomes():
    base = np.array([0.10, 0.12, 0.11, 0.13, 0.09])
    # a is slightly better: shown within a 0.01 margin
    assert stats.noninferiority(base - 0.002, base, margin=0.01).decision == "within"
    # a is clearly worse by 0.05: beyond the margin
    assert stats.noninferiority(base + 0.05 + np.array([0, .001, -.001, .002, 0]), base,
                                0.01).decision == "outside"
    # noisy differences: undecided, never read as support
    noisy = base + np.array([0.03, -0.03, 0.02, -0.025, 0.01])
    assert stats.noninferiority(noisy, base, 0.01).decision == "undecided"
    with pytest.raises(ValueError, match="margin"):
        stats.noninferiority(base, base, 0)


def test_noninferiority_p_value_matches_scipy_one_sided_test():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.2, 0.02, 6), rng.normal(0.2, 0.02, 6)
    res = stats.noninferiority(a, b, 0.03)
    ref = sp.ttest_1samp(a - b - 0.03, 0, alternative="less")
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert (res.decision == "within") == (ref.pvalue < 0.025)  # one-sided at the study's alpha / 2


def test_equivalence_tost():
    base = np.array([0.5, 0.6, 0.55, 0.52, 0.58])
    close = base + np.array([0.001, -0.002, 0.0015, 0, -0.001])
    assert stats.equivalence(close, base, 0.01).decision == "within"
    assert stats.equivalence(base + 0.1 + np.array([0, .001, -.001, 0, .002]), base,
                             0.01).decision == "outside"
    assert stats.equivalence(base + np.array([0.05, -0.05, 0.04, -0.03, 0.0]), base,
                             0.01).decision == "undecided"
    res = stats.equivalence(close, base, 0.01)
    d = close - base
    p_low = sp.ttest_1samp(d + 0.01, 0, alternative="greater").pvalue
    p_high = sp.ttest_1samp(d - 0.01, 0, alternative="less").pvalue
    assert res.p_value == pytest.approx(max(p_low, p_high), rel=1e-9)


def test_slope_interval_by_hand_and_coverage():
    x = [1, 2, 3, 1, 2, 3]
    y = [2, 4, 6, 2, 4, 6]
    iv = stats.slope_interval(x, y)
    assert iv.estimate == pytest.approx(2) and iv.low == pytest.approx(
        2) and iv.high == pytest.approx(2)
    rng = np.random.default_rng(1)
    xs = np.repeat([6, 12, 24, 48], 5)
    hits = 0
    for i in range(200):
        ys = 0.01 * xs + rng.normal(0, 0.05, len(xs))
        hits += stats.slope_interval(xs, ys, n_boot=400, seed=i).contains(0.01)
    # a percentile bootstrap with 5 runs per x undercovers a little, not much
    assert hits / 200 >= 0.85
    with pytest.raises(ValueError, match="two distinct"):
        stats.slope_interval([1, 1], [2, 3])


def test_interval_comparisons_and_record_form():
    a, b = stats.Interval(0.5, 0.4, 0.6, 5, "t"), stats.Interval(0.2, 0.1, 0.3, 5, "t")
    assert a.above(b) and b.below(a) and not b.above(a) and a.above(0.35)
    d = a.as_dict()
    assert set(d) == {"estimate", "low", "high", "n", "method", "level"}
    with pytest.raises(ValueError, match="does not contain"):
        stats.Interval(0.9, 0.1, 0.3, 5, "t")
