"""Leave one seed out (rules.core): a sensitivity analysis reported beside the verdict, never a
veto.

The expected flips are worked out independently with SciPy's t distribution on the same numbers.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from scipy import stats as sp

from skipanalysis.rules import core, degradation, gradient_flow, transformer_norm
from skipanalysis.rules import cost as cost_rules

SHALLOW = np.array([0.30, 0.31, 0.29, 0.30, 0.32, 0.30])


def _t_low(v) -> float:
    v = np.asarray(v, dtype=float)
    return v.mean() - sp.t.ppf(0.975, len(v) - 1) * sp.sem(v)


def test_a_single_outlier_seed_that_drives_support_is_reported_but_does_not_veto():
    # the sixth seed is twice the others' largest
    diff = np.array([0.010, 0.012, 0.0, 0.011, 0.001, 0.025])
    # all six: interval above 0; without the sixth: it holds 0
    assert _t_low(diff) > 0 > _t_low(diff[:5])
    d = degradation.d1(SHALLOW, SHALLOW + diff, SHALLOW + diff, margin=0.001)
    # the full sample alone would read "supported"
    assert d.numbers["deep_minus_shallow"]["low"] > 0
    assert d.verdict == "supported" and d.numbers["seeds"] == 6
    assert d.numbers["leave_one_seed_out"]["#6"] == "inconclusive"
    assert d.numbers["sensitivity"].startswith("supported on all 6 seeds; ")
    assert "inconclusive without seed #6" in d.numbers["sensitivity"]
    flips = {f"#{k + 1}" for k in range(6) if not _t_low(np.delete(diff, k)) > 0}
    assert {k for k, v in d.numbers["leave_one_seed_out"].items() if v != "supported"} == flips


def test_a_consistent_effect_keeps_its_verdict_and_says_so():
    diff = np.array([0.05, 0.06, 0.055, 0.052, 0.058, 0.061])
    assert all(_t_low(np.delete(diff, k)) > 0 for k in range(6))
    d = degradation.d1(SHALLOW, SHALLOW + diff, SHALLOW + diff, margin=0.001)
    assert d.verdict == "supported"
    assert d.numbers["sensitivity"] == "supported with any one of 6 seeds left out"
    refuted = degradation.d1(SHALLOW + diff, SHALLOW, SHALLOW, margin=0.001)
    assert refuted.verdict == "refuted" and set(refuted.numbers["leave_one_seed_out"].values()) == {
        "refuted"}


def test_inconclusive_verdicts_are_not_rechecked():
    noise = SHALLOW + np.array([0.01, -0.01, 0.02, -0.02, 0.0, 0.005])
    d = degradation.d1(SHALLOW, noise, noise, margin=0.001)
    assert (d.verdict == "inconclusive" and "sensitivity" not in d.numbers
            and d.numbers["seeds"] == 6)


def test_seeds_named_by_dict_keys_and_minimum_sizes_lowered_by_one():
    # T3 needs 5 seeds per arm; with exactly 5, each leave-one-out sample of 4 must still be read,
    # not refused.
    runs = [
        {"norm": n, "depth": 12, "seed": 100 + s, "trained": n == "pre", "diverged": n == "post",
             "converged": True} for n in ("pre", "post") for s in range(8)]
    d = transformer_norm.t3(runs)
    assert d.verdict == "supported"
    assert set(d.numbers["leave_one_seed_out"]) == {str(100 + s) for s in range(8)}
    assert set(d.numbers["leave_one_seed_out"].values()) == {"supported"}
    six = [r for r in runs if r["seed"] < 106]
    d6 = transformer_norm.t3(six)
    assert d6.verdict == "supported"  # 6 of 6 against 0 of 6: the least an exact interval decides
    # each leave-one-out sample of 5 is read (the minimum lowered by one), and 5 of 5 cannot clear
    # one half
    assert set(d6.numbers["leave_one_seed_out"].values()) == {"inconclusive"}
    # 4 seeds: too few
    assert "fewer than 5 seeds" in transformer_norm.t3([r for r in six if r["seed"] < 104]).numbers
    assert core.needed(5) == 5


def test_flat_points_are_left_out_by_their_seed_label():
    depths = [8, 16, 32] * 5
    seeds = [s for s in range(5) for _ in range(3)]
    rng = np.random.default_rng(0)
    c_plain = [float(np.exp(-0.1 * d) * (1 + 0.02 * rng.standard_normal())) for d in depths]
    c_res = [float(np.exp(-0.01 * d) * (1 + 0.02 * rng.standard_normal())) for d in depths]
    d = gradient_flow.g3(depths, c_plain, c_res, seeds=seeds)
    assert d.verdict == "supported" and set(d.numbers["leave_one_seed_out"]) == {"0", "1", "2", "3",
                                                                                 "4"}
    unlabelled = gradient_flow.g3(depths, c_plain, c_res)
    # G3 pairs its fit by seed: without labels it cannot
    assert unlabelled.verdict == "inconclusive"


def test_timing_rules_leave_one_round_out():
    rounds = np.array([1.0, 1.1, 0.9, 1.05, 0.95, 1.0])
    dense, resnet = 1.3 * rounds, rounds
    d = cost_rules.c8(0.8 * rounds, rounds, dense, resnet)
    assert (d.verdict == "supported"
            and d.numbers["sensitivity"] == "supported with any one of 6 rounds left out")
    assert "leave_one_round_out" in d.numbers


def test_every_empirical_rule_checks_robustness_or_says_why_not():
    # D4 reads one median per net state and C3 exact byte counts: there is no replicate to leave
    # out.
    single = {"D4", "C3", "S1"}
    for cid, fn in core.RULES.items():
        declared = bool(fn.per_seed or fn.labelled)
        assert declared == (cid not in single), cid
        assert ("Sensitivity (reported, not a veto)" in fn.text) == declared, cid
        params = inspect.signature(fn).parameters
        assert all(name in params for name in fn.per_seed + fn.labelled), cid


def test_a_rule_naming_an_argument_it_lacks_is_refused():
    with pytest.raises(TypeError, match="'nope' is not an argument"):
        core.rule("D1", "text", per_seed=("nope",))(lambda a: None)
