"""skipanalysis.rules.unet_skips: U1-U3 on hand-made scores, intervals against scipy and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from skipanalysis.rules import core, unet_skips

WOBBLE = np.array([0.00, 0.004, -0.004, 0.002, -0.002])  # per-seed noise shared by paired arms


CONTROL = [0.40, 0.42, 0.41, 0.39, 0.40]  # share of the with-skip net's own errors in the band


def test_u1_supported_refuted_inconclusive():
    concat = 0.70 + WOBBLE
    share = [0.62, 0.65, 0.60, 0.64, 0.63]
    assert unet_skips.u1(concat, concat - 0.05, share, CONTROL, 0.30).verdict == "supported"
    # the skips hurt
    assert unet_skips.u1(concat, concat + 0.05, share, CONTROL, 0.30).verdict == "refuted"
    # realistic: 74% of the added errors lie in the band (29% of the pixels), but the with-skip
    # net's own errors
    # lie there 80% of the time: the added errors are no more boundary-bound than any error. The
    # pixel-share rule
    # read this as support; against the control it is refuted
    added, own = [0.74, 0.73, 0.75, 0.74, 0.72], [0.80, 0.79, 0.81, 0.80, 0.78]
    assert unet_skips.u1(concat, concat - 0.05, added, own, 0.29).verdict == "refuted"
    # quality drops, share indistinguishable from the control
    assert unet_skips.u1(concat, concat - 0.05, [0.3, 0.5, 0.4, 0.35, 0.45], CONTROL,
                         0.30).verdict == "inconclusive"
    # no clear drop
    noisy = concat + np.array([0.03, -0.03, 0.02, -0.02, 0.0])
    assert unet_skips.u1(concat, noisy, share, CONTROL, 0.30).verdict == "inconclusive"


def test_u1_reads_v_rand_beside_iou():
    concat = 0.70 + WOBBLE
    share = [0.62, 0.65, 0.60, 0.64, 0.63]
    rand = 0.85 + WOBBLE
    base = dict(share_added_near=share, share_control_near=CONTROL, share_pixels_near=0.30)
    assert unet_skips.u1(concat, concat - 0.05, rand_with=rand, rand_without=rand - 0.04,
                         **base).verdict == "supported"
    # realistic: IoU rises by 0.05 but the cells the membranes enclose merge more (V_rand 0.04
    # lower): refuted
    d = unet_skips.u1(concat, concat - 0.05, rand_with=rand - 0.04, rand_without=rand, **base)
    assert d.verdict == "refuted" and d.numbers["rand_f_with_minus_without"]["high"] < 0
    # V_rand inside the noise: the quality gain is not shown on every measure
    noisy = rand + np.array([0.03, -0.03, 0.02, -0.02, 0.0])
    assert unet_skips.u1(concat, concat - 0.05, rand_with=rand, rand_without=noisy,
                         **base).verdict == "inconclusive"


def test_u1_not_converged_and_interval_bounds():
    concat = 0.70 + WOBBLE
    d = unet_skips.u1(concat, concat - 0.05, [0.62] * 5, CONTROL, 0.30,
                      converged=[True] * 9 + [False])
    assert d.verdict == "inconclusive" and d.numbers["not converged"] == "1 of 10 runs"
    # shares are rates: the interval stays inside [0, 1] even when the t interval would not
    d = unet_skips.u1(concat[:3], concat[:3] - 0.05, [0.99, 1.0, 0.97], CONTROL[:3], 0.30)
    share = d.numbers["share_of_added_errors_near_boundary"]
    assert 0 <= share["low"] <= share["high"] <= 1


def test_u1_paired_interval_against_scipy():
    a = np.array([0.71, 0.69, 0.72, 0.70, 0.73])
    b = np.array([0.65, 0.66, 0.64, 0.67, 0.66])
    d = a - b
    lo, hi = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    got = unet_skips.u1(a, b, [0.6] * 5, CONTROL, 0.3).numbers["iou_with_minus_without"]
    assert got["low"] == pytest.approx(lo, abs=1e-4) and got["high"] == pytest.approx(hi, abs=1e-4)


def test_u2_supported_refuted_inconclusive():
    thin, mid, thick = 0.20 + WOBBLE, 0.10 + WOBBLE, 0.02 + WOBBLE
    d = unet_skips.u2({"<= 3 px": thin, "5 px": mid, "> 5 px": thick})
    assert d.verdict == "supported"
    assert (d.numbers["thinnest"] == "<= 3 px"
            and d.numbers["slope_per_class"]["estimate"] == pytest.approx(-0.09))
    # the slope's interval is over seeds: every seed's three classes fall by the same 0.09 a class
    # (WOBBLE is shared
    # by a seed's classes), so the per-seed slopes agree and the interval closes on -0.09
    assert "per-seed slopes" in d.numbers["slope_per_class"]["method"]
    assert (
        d.numbers["slope_per_class"]["high"] - d.numbers["slope_per_class"]["low"] == pytest.approx(
            0, abs=1e-9))
    assert unet_skips.u2({"thin": thick, "mid": mid, "thick": thin}).verdict == "refuted"
    noisy = thin + np.array([0.0, 0.2, -0.2, 0.15, -0.15])
    assert unet_skips.u2({"thin": noisy, "thick": thin}).verdict == "inconclusive"
    assert unet_skips.u2({"only": thin}).verdict == "inconclusive"
    assert unet_skips.u2({"thin": thin, "thick": thick},
                         converged=[False]).verdict == "inconclusive"


def test_u2_difference_by_hand():
    # thin - thick per seed: 0.1, 0.2, 0.3 -> mean 0.2, sd 0.1, half-width t(0.975, 2) * 0.1 /
    # sqrt(3)
    d = unet_skips.u2(
        {"thin": [0.3, 0.4, 0.5], "thick": [0.2, 0.2, 0.2]}).numbers["thinnest_minus_thickest"]
    half = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert d["estimate"] == pytest.approx(0.2) and d["low"] == pytest.approx(0.2 - half, abs=1e-4)


def test_u3_winner_equivalence_and_undecided():
    concat = 0.70 + WOBBLE
    d = unet_skips.u3(concat, concat - 0.03, margin=0.01)
    assert d.verdict == "supported" and d.numbers["winner"] == "concat"
    d = unet_skips.u3(concat, concat + 0.03, margin=0.01)
    assert d.verdict == "supported" and d.numbers["winner"] == "add"
    d = unet_skips.u3(concat, concat + 0.001, margin=0.01)
    assert d.verdict == "refuted" and d.numbers["winner"] == "none by the margin"
    noisy = concat + np.array([0.03, -0.02, 0.025, -0.01, 0.0])
    assert unet_skips.u3(concat, noisy, margin=0.01).verdict == "inconclusive"
    assert unet_skips.u3(concat, concat - 0.03, 0.01,
                         converged=[True, False]).verdict == "inconclusive"
    with pytest.raises(ValueError, match="margin"):
        unet_skips.u3(concat, concat, margin=0)


def test_u3_tost_interval_against_scipy():
    a = np.array([0.70, 0.72, 0.69, 0.71, 0.70])
    b = np.array([0.68, 0.69, 0.69, 0.68, 0.67])
    d = a - b
    # TOST at 0.025 a side reads the 95%
    lo, hi = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    got = unet_skips.u3(a, b, 0.01).numbers["equivalence_concat_vs_add"]["difference"]
    assert got["low"] == pytest.approx(lo, abs=1e-4) and got["high"] == pytest.approx(hi, abs=1e-4)


def test_rules_registered_with_text():
    for cid in ("U1", "U2", "U3", "E5"):
        assert core.RULES[cid].claim_id == cid and len(core.text(cid)) > 100


def test_u1_leaves_each_seed_out_of_v_rand_too():
    concat, rand = 0.70 + WOBBLE, 0.85 + WOBBLE
    d = unet_skips.u1(concat, concat - 0.05, [0.62, 0.65, 0.60, 0.64, 0.63], CONTROL, 0.30,
                      rand_with=rand,
                 rand_without=rand - 0.04)
    assert d.numbers["seeds"] == 5 and set(d.numbers["leave_one_seed_out"].values()) == {
        "supported"}
