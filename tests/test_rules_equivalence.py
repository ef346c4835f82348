"""skipanalysis.rules.equivalence: E5 and the identity checks E1-E4."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skipanalysis.rules import core, equivalence

WOBBLE = np.array([0.00, 0.004, -0.004, 0.002, -0.002])  # per-seed noise shared by paired arms


def _e5(dense, residual, dense_init=None, residual_init=None, **kw):
    dense_init = dense if dense_init is None else dense_init
    residual_init = residual if residual_init is None else residual_init
    return equivalence.e5(dense, residual, dense, kw.pop("margin", 0.01), dense_init, residual_init,
                          dense_init, **kw)


def test_e5_supported_refuted_inconclusive():
    dense = [1.0, 1.0, 0.9999, 1.0, 1.0]
    assert _e5(dense, 0.90 + WOBBLE).verdict == "supported"
    assert _e5(dense, 0.998 + WOBBLE / 10).verdict == "refuted"
    noisy = 0.985 + np.array([0.01, -0.01, 0.012, -0.012, 0.0])
    assert _e5(dense, noisy).verdict == "inconclusive"
    failed = equivalence.e5(dense, 0.90 + WOBBLE, [1.0, 0.9, 1.0, 1.0, 1.0], 0.01, dense,
                            0.9 + WOBBLE, dense)
    assert failed.verdict == "inconclusive" and "decoder check" in failed.numbers


def test_e5_is_structural_both_states_count_and_convergence_is_no_gate():
    dense = [1.0, 1.0, 0.9999, 1.0, 1.0]
    # realistic: the trained ResNet sum hides earlier outputs (R^2 0.90) but at initialisation a
    # linear decoder
    # unmixes them (R^2 0.998): the structure alone does not hide them, so the claim is refuted
    got = _e5(dense, 0.90 + WOBBLE, residual_init=0.998 + WOBBLE / 10)
    assert got.verdict == "refuted"
    assert got.numbers["unexplained_residual_minus_dense_initialised"]["decision"] == "within"
    unconverged = _e5(dense, 0.90 + WOBBLE, converged=[True, False, True, True, True])
    assert unconverged.verdict == "supported"
    assert unconverged.numbers["converged (reported, not a gate)"] == "4 of 5 runs"


def test_e5_bound_by_hand():
    # unexplained variance residual - dense per seed: 0.1, 0.12, 0.08 -> mean 0.1, sd 0.02;
    # one-sided 97.5% bounds: 0.1 -/+ t(0.975, 2) * 0.02 / sqrt(3)
    d = _e5([1.0, 1.0, 1.0], [0.9, 0.88, 0.92])
    iv = d.numbers["unexplained_residual_minus_dense_trained"]["difference"]
    half = 4.302652729911275 * 0.02 / math.sqrt(3)
    assert iv["low"] == pytest.approx(0.1 - half, abs=1e-4) and iv["high"] == pytest.approx(
        0.1 + half, abs=1e-4)
    assert iv["low"] > 0.01 and d.verdict == "supported"
    # without the first, 0.12 and 0.08 give 0.1 - t(0.975, 1) * 0.02 = 0.1 - 12.71 * 0.02 < 0.01:
    # reported only
    assert d.numbers["leave_one_seed_out"]["#1"] == "inconclusive"


def test_e1_to_e4_identity_checks():
    merge = {"residual_add_max_dev": 2e-16, "dense_prefix_max_dev": 0.0, "dense_out_channels": 40,
             "dense_expected_channels": 40}
    assert equivalence.e1(merge).verdict == "verified"
    assert equivalence.e1({**merge, "dense_out_channels": 39}).verdict == "failed"
    assert equivalence.e1({**merge, "residual_add_max_dev": 1e-6}).verdict == "failed"
    assert equivalence.e2([1e-16, 3e-15]).verdict == "verified" and equivalence.e2(
        [1e-16, 1e-6]).verdict == "failed"
    # best tied fit of m Gaussian inputs leaves about sqrt(1 - 1/m): 0 at m = 1, 0.71 at m = 2
    fit = [0.0] + [math.sqrt(1 - 1 / m) for m in range(2, 9)]
    assert equivalence.e3(1e-15, fit).verdict == "verified"
    # m = 2 fitted by one tied kernel: not dense
    assert equivalence.e3(1e-15, [0.0, 0.05] + fit[2:]).verdict == "failed"
    tri = [L * (L + 1) // 2 for L in range(1, 6)]
    assert equivalence.e4(tri, tri, [12, 12], [12, 12], [100, 200],
                          [100, 200]).verdict == "verified"
    assert equivalence.e4(tri[:-1] + [14], tri, [12, 12], [12, 12], [100, 200],
                          [100, 200]).verdict == "failed"
    assert all(core.claim_kind(c) == "identity" for c in ("E1", "E2", "E3", "E4"))
