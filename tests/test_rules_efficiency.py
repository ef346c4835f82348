"""skipanalysis.rules.param_efficiency: A1-A3 on hand-made runs, bounds against scipy and by
hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sp

from skipanalysis.rules import param_efficiency

WOBBLE = np.array([0.00, 0.01, -0.01, 0.005, -0.005])  # per-seed noise shared by paired arms


def _h(hybrid, base, params, flops=None, time=None):
    """A hybrid's arm: errors and cost ratios (FLOPs and time default to the parameter ratio)."""
    return {"hybrid_err": list(hybrid), "base_err": list(base),
            "costs": {"params": params, "flops": params if flops is None else flops,
                      "time": params if time is None else time}}


def test_a1():
    res = 0.40 + WOBBLE
    ctrl = res + 0.04  # the matched ResNet: clearly worse than a DenseNet at the ResNet's error
    def a1(dense, c=ctrl, ratio=0.38, c_ratio=0.73, **kw):
        return param_efficiency.a1(res, dense, c, ratio, c_ratio, 0.02, **kw)
    assert a1(res + 0.005).verdict == "supported"
    assert a1(res + 0.06).verdict == "refuted"
    noisy = res + 0.01 + np.array([0.04, -0.03, 0.03, -0.04, 0.0])
    assert a1(noisy).verdict == "inconclusive"
    # a pair at half the parameters does not test "a third"; nor does one at a fifth
    for ratio, shown in ((0.5, "0.50"), (0.2, "0.20")):
        d = a1(res, ratio=ratio)
        assert d.verdict == "inconclusive" and shown in d.numbers["pair"]
    # overlapping intervals are not "comparable": mean 1.5 points worse, noise too large to bound it
    # under 2
    assert a1(res + 0.015 + np.array([0.02, -0.02, 0.015, -0.015, 0.0])).verdict == "inconclusive"
    d = a1(res, converged=[True, False])
    assert d.verdict == "inconclusive" and "not converged" in d.numbers


def test_a1_matched_control():
    res = 0.40 + WOBBLE
    dense = res + 0.005  # non-inferior to the larger ResNet
    # a ResNet of the DenseNet's size does as well: the saving is not the dense pattern's
    same = param_efficiency.a1(res, dense, dense + np.array([0.01, -0.01, 0.005, -0.005, 0.0]),
                               0.38, 0.73, 0.02)
    assert same.verdict == "inconclusive" and "as well" in same.numbers["control"]
    # ... or better: refuted
    assert param_efficiency.a1(res, dense, dense - 0.03, 0.38, 0.73, 0.02).verdict == "refuted"
    # a control three times the DenseNet's size is no control
    big = param_efficiency.a1(res, dense, dense + 0.04, 0.38, 3.0, 0.02)
    assert big.verdict == "inconclusive" and "not matched" in big.numbers["control"]
    # the control's interval by hand: differences 0.04 +- WOBBLE's spread
    c = dense + 0.04 + np.array([0.01, 0.0, -0.01, 0.0, 0.0])
    d = c - dense
    low, high = sp.t.interval(0.95, 4, loc=d.mean(), scale=sp.sem(d))
    got = param_efficiency.a1(res, dense, c, 0.38, 0.73, 0.02).numbers["control_minus_densenet_err"]
    assert got["low"] == pytest.approx(low, abs=1e-4) and got["high"] == pytest.approx(high,
                                                                                       abs=1e-4)


def test_a1_bound_against_scipy():
    res = np.array([0.40, 0.42, 0.39, 0.41, 0.40])
    dense = res + np.array([0.01, 0.00, 0.02, 0.01, 0.005])
    d = dense - res
    upper = d.mean() + sp.t.ppf(0.975, 4) * sp.sem(d)
    got = param_efficiency.a1(res, dense, dense + 0.05, 0.38, 0.73,
                              margin=0.02).numbers["noninferiority_densenet_vs_resnet"]
    assert got["difference"]["high"] == pytest.approx(upper, abs=1e-4)
    assert got["decision"] == ("within" if upper < 0.02 else "undecided")


def test_a2():
    tr = 0.01 + WOBBLE / 10
    res_test = 0.55 + WOBBLE
    ctrl = (tr, res_test + 0.02)  # the matched ResNet overfits about as much as the larger one
    # ResNet overfits more: same training error, higher test error
    assert param_efficiency.a2(tr, res_test, tr, res_test - 0.05, *ctrl).verdict == "supported"
    assert param_efficiency.a2(tr, res_test, tr, res_test + 0.05, *ctrl).verdict == "refuted"
    noisy = res_test + np.array([0.05, -0.06, 0.04, -0.05, 0.01])
    assert param_efficiency.a2(tr, res_test, tr, noisy, *ctrl).verdict == "inconclusive"
    # a smaller gap bought by not fitting the training set (and a higher test error) is not less
    # overfitting
    fits_less = param_efficiency.a2(tr, res_test, tr + 0.3, res_test + 0.1, *ctrl)
    assert fits_less.verdict == "inconclusive" and "fits less" in fits_less.numbers["densenet"]
    # a smaller gap that the DenseNet-sized ResNet shares is a size effect
    size = param_efficiency.a2(tr, res_test, tr, res_test - 0.05, tr,
                               res_test - 0.05 + WOBBLE[::-1] / 2)
    assert size.verdict == "inconclusive" and "size effect" in size.numbers["control"]
    d = param_efficiency.a2(tr, res_test, tr, res_test - 0.05, *ctrl, converged=[False] * 15)
    assert d.verdict == "inconclusive" and d.numbers["not converged"] == "15 of 15 runs"


def test_a2_gap_interval_by_hand():
    r_tr, r_te = [0.0, 0.1, 0.0], [0.5, 0.6, 0.4]  # gaps 0.5, 0.5, 0.4
    d_tr, d_te = [0.1, 0.1, 0.0], [0.5, 0.5, 0.3]  # gaps 0.4, 0.4, 0.3
    # gaps 0.6, 0.4, 0.5: minus the DenseNet's 0.2, 0.0, 0.2
    c_tr, c_te = [0.0, 0.0, 0.0], [0.6, 0.4, 0.5]
    got = param_efficiency.a2(r_tr, r_te, d_tr, d_te, c_tr, c_te).numbers
    assert got["resnet_minus_densenet_gap"]["estimate"] == pytest.approx(0.1)
    # every seed's difference is exactly 0.1
    assert got["resnet_minus_densenet_gap"]["low"] == pytest.approx(0.1) and \
        got["resnet_minus_densenet_gap"]["high"] == pytest.approx(0.1)
    low, high = sp.t.interval(0.95, 2, loc=0.4 / 3, scale=sp.sem([0.2, 0.0, 0.2]))
    assert got["control_minus_densenet_gap"]["low"] == pytest.approx(low, abs=1e-4)
    assert got["control_minus_densenet_gap"]["high"] == pytest.approx(high, abs=1e-4)


def test_a3():
    base = 0.40 + WOBBLE
    se_better = _h(base - 0.02, base, 1.03)         # cost-matched and clearly better
    csp_same = _h(base + 0.002, base, 0.87)         # cheaper and non-inferior
    assert param_efficiency.a3({"se": se_better, "csp": csp_same},
                               margin=0.02).verdict == "supported"
    se_worse = _h(base + 0.02, base, 1.03)
    csp_worse = _h(base + 0.06, base, 0.87)
    assert param_efficiency.a3({"se": se_worse, "csp": csp_worse}, margin=0.02).verdict == "refuted"
    # mixed: one improves, one is worse
    mixed = param_efficiency.a3({"se": se_better, "csp": csp_worse}, margin=0.02)
    assert mixed.verdict == "inconclusive"
    assert [o["outcome"] for o in mixed.numbers["hybrids"].values()] == ["improves", "worse"]
    # the same error as the base at higher cost is undecided, not an improvement
    same = param_efficiency.a3(
        {"se": _h(base + np.array([0.01, -0.01, 0.005, -0.005, 0.0]), base, 1.03)}, 0.02)
    assert (same.verdict == "inconclusive"
            and same.numbers["hybrids"]["se"]["outcome"] == "undecided")
    d = param_efficiency.a3({"se": se_better}, 0.02, converged=[True, True, False])
    assert d.verdict == "inconclusive" and d.numbers["not converged"] == "1 of 3 runs"


def test_a3_is_a_pareto_comparison_over_error_parameters_flops_and_time():
    base = 0.40 + WOBBLE
    outcome = lambda arm: param_efficiency.a3({"h": arm}, 0.02).numbers["hybrids"]["h"]  # noqa: E731
    # fifteen points worse is worse, however much cheaper on every axis (the old rule's blind spot)
    far = outcome(_h(base + 0.15, base, 0.87, 0.5, 0.5))
    assert far["error"] == "worse" and far["outcome"] == "worse"
    # lower error at the same parameters but 1.4x the step time: neither point dominates the other
    slow = outcome(_h(base - 0.02, base, 1.03, 1.0, 1.4))
    assert slow["costs"] == {"params": "matched", "flops": "matched", "time": "costlier"}
    assert slow["outcome"] == "undecided"
    # cheaper in parameters, costlier in time, error non-inferior: a trade-off
    mixed = outcome(_h(base + 0.002, base, 0.87, 0.95, 1.3))
    assert mixed["outcome"] == "trade-off"
    # nothing cheaper and a clearly (if slightly) higher error: the base dominates
    assert outcome(_h(base + 0.01, base, 1.0))["outcome"] == "worse"
    # non-inferior at lower FLOPs and matched elsewhere: dominates
    assert outcome(_h(base + 0.002, base, 1.0, 0.8, 1.05))["outcome"] == "improves"
    # twice the parameters with a lower error decides nothing
    assert outcome(_h(base - 0.05, base, 2.0))["outcome"] == "undecided"
    assert [param_efficiency.cost_class(r) for r in (0.9, 0.91, 1.1, 1.11)] == [
        "cheaper", "matched", "matched",
                                                                                "costlier"]
    with pytest.raises(ValueError, match="missing"):
        param_efficiency.a3({"h": {"hybrid_err": list(base), "base_err": list(base),
                                   "costs": {"params": 1.0}}}, 0.02)


def test_a3_matched_gain_against_scipy():
    base = np.array([0.40, 0.42, 0.39, 0.41, 0.40])
    hybrid = base - np.array([0.01, 0.02, 0.0, 0.015, 0.01])
    d = base - hybrid
    low, high = sp.t.interval(0.95, 4, loc=d.mean(), scale=sp.sem(d))
    hybrids = param_efficiency.a3({"se": _h(hybrid, base, 1.03)}, 0.02).numbers["hybrids"]
    got = hybrids["se"]["base_minus_hybrid_err"]
    assert got["low"] == pytest.approx(low, abs=1e-4) and got["high"] == pytest.approx(high,
                                                                                       abs=1e-4)


def test_a1_support_that_one_seed_decides_is_kept_and_the_sensitivity_says_so():
    res = np.array([0.40, 0.42, 0.39, 0.41, 0.40])
    dense = res + np.array([0.0, 0.001, 0.0, 0.002, 0.020])
    d = dense - res
    # one-sided bound at 0.025 (the study's alpha, two-sided)
    upper = d.mean() + sp.t.ppf(0.975, 4) * sp.sem(d)
    upper_without_first = d[1:].mean() + sp.t.ppf(0.975, 3) * sp.sem(d[1:])
    # all five seeds say "within"; without seed 0 it is undecided
    assert upper < 0.02 < upper_without_first
    got = param_efficiency.a1(res, dense, dense + 0.05, 0.38, 0.73, margin=0.02)
    assert got.numbers["noninferiority_densenet_vs_resnet"]["decision"] == "within"
    assert got.numbers["leave_one_seed_out"]["#1"] == "inconclusive" and got.verdict == "supported"
    assert "inconclusive without seed #1" in got.numbers["sensitivity"]


def test_a3_outcome_that_one_seed_decides_is_reported_as_sensitive():
    base = np.array([0.40, 0.42, 0.39, 0.41, 0.40])
    gain = np.array([0.02, 0.02, 0.02, 0.0, 0.02])
    low = gain.mean() - sp.t.ppf(0.975, 4) * sp.sem(gain)
    low_without_first = gain[1:].mean() - sp.t.ppf(0.975, 3) * sp.sem(gain[1:])
    assert low > 0 > low_without_first  # five seeds: clearly better; without seed 0: not clearly
    d = param_efficiency.a3({"se": _h(base - gain, base, 1.03)}, 0.02)
    assert d.numbers["hybrids"]["se"]["outcome"] == "improves"  # on all five seeds
    assert d.verdict == "supported" and d.numbers["leave_one_seed_out"]["#1"] == "inconclusive"
