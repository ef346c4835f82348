"""skipanalysis.rules.loss_landscape: L1 on hand-made surfaces and runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from skipanalysis.rules import loss_landscape, param_efficiency

WOBBLE = np.array([0.00, 0.01, -0.01, 0.005, -0.005])  # per-seed noise shared by paired arms


def test_l1_supported_refuted_inconclusive():
    res = 0.05 + WOBBLE
    # plain rougher than residual, more so at the deep depth
    assert loss_landscape.l1(res + 0.05, res, res + 0.30, res).verdict == "supported"
    # residual rougher at the deep depth
    assert loss_landscape.l1(res, res, res, res + 0.2).verdict == "refuted"
    # plain rougher at both depths, but the gap shrinks with depth
    shrink = loss_landscape.l1(res + 0.40, res, res + 0.10, res)
    assert shrink.verdict == "refuted" and shrink.numbers["growth"]["high"] < 0
    # a deep gap that seed noise could cancel
    noisy = res + np.array([0.2, -0.15, 0.1, -0.12, 0.02])
    assert loss_landscape.l1(res, res, noisy, res).verdict == "inconclusive"
    # two point values that differ are not enough: one seed gives an unbounded interval
    assert loss_landscape.l1([0.1], [0.0], [0.9], [0.0]).verdict == "inconclusive"


def test_l1_flat_surfaces_and_unconverged_runs_are_inconclusive():
    zero = [0.0] * 5
    flat = loss_landscape.l1(zero, zero, zero, zero)
    assert (flat.verdict == "inconclusive"
            and flat.numbers["surfaces"] == "no non-convex point in any")
    res = 0.05 + WOBBLE
    d = loss_landscape.l1(res + 0.05, res, res + 0.30, res, converged=[True] * 19 + [False])
    assert d.verdict == "inconclusive" and d.numbers["not converged"] == "1 of 20 runs"
    with pytest.raises(ValueError, match="equal lengths"):
        loss_landscape.l1([0.1, 0.2], [0.1], [0.1, 0.2], [0.1, 0.2])


def test_l1_growth_interval_by_hand():
    ps, rs = [0.10, 0.20, 0.15], [0.05, 0.05, 0.10]
    pd_, rd = [0.50, 0.40, 0.45], [0.05, 0.10, 0.05]
    growth = np.subtract(np.subtract(pd_, rd), np.subtract(ps, rs))  # 0.40, 0.15, 0.35
    half = sp.t.ppf(0.975, 2) * growth.std(ddof=1) / math.sqrt(3)
    g = loss_landscape.l1(ps, rs, pd_, rd).numbers["growth"]
    assert g["estimate"] == pytest.approx(0.3, abs=1e-4)
    assert g["low"] == pytest.approx(0.3 - half, abs=1e-4) and g["high"] == pytest.approx(
        min(2.0, 0.3 + half),
                                                                                          abs=1e-4)
    # a gap of two shares stays inside [-1, 1]
    wide = loss_landscape.l1([0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]).numbers["gap_deep"]
    assert wide["low"] == -1.0 and wide["high"] == 1.0


def test_l1_a_net_stuck_at_chance_is_not_a_trained_minimum():
    res = 0.05 + WOBBLE
    errs = {"plain-20": [0.4] * 5, "residual-20": [0.35] * 5,
            "plain-56": [0.89, 0.9, 0.88, 0.9, 0.9],
            "residual-56": [0.4] * 5}
    d = loss_landscape.l1(res + 0.05, res, res + 0.30, res, train_err=errs, chance=0.9)
    assert d.verdict == "inconclusive" and d.numbers["did not leave chance"] == ["plain-56"]
    errs["plain-56"] = [0.6] * 5
    assert loss_landscape.l1(res + 0.05, res, res + 0.30, res, train_err=errs,
                             chance=0.9).verdict == "supported"


def test_l1_and_a2_keep_decisions_that_every_seed_repeats():
    res = 0.05 + WOBBLE
    d = loss_landscape.l1(res + 0.05, res, res + 0.30, res)
    assert d.verdict == "supported" and list(d.numbers["leave_one_seed_out"].values()) == [
        "supported"] * 5
    tr, te = 0.01 + WOBBLE / 10, 0.55 + WOBBLE
    a2 = param_efficiency.a2(tr, te, tr, te - 0.05, tr, te + 0.01)
    assert a2.verdict == "supported" and set(a2.numbers["leave_one_seed_out"].values()) == {
        "supported"}
