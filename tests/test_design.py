"""The study's design (skipanalysis.design): a row for every empirical claim, profiles that run what
it plans, underpowered verdicts, and the power a row reports, checked against simulation and hand
formulas."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from skipanalysis import design, stats
from skipanalysis.claims import CATALOGUE, apply_design
from skipanalysis.pipeline.runner import resolved_parameters
from skipanalysis.rules import core, degradation

ROOT = Path(__file__).resolve().parent.parent


def _effective(profile: str, notebook: str, name: str):
    """A parameter's value in a profile: the notebook's default with the profile's section on
    top."""
    return resolved_parameters(ROOT / "notebooks" / f"{notebook}.ipynb", profile)[name]


def test_every_empirical_claim_has_one_design_row_and_no_identity_has_one():
    empirical = {c for c in CATALOGUE if core.claim_kind(c) == "empirical"}
    assert set(design.DESIGNS) == empirical
    for row in design.DESIGNS.values():
        assert row.source and row.test and row.quantity and row.effect_text, row.claim


@pytest.mark.parametrize("profile", design.PROFILES)
def test_profiles_run_the_seeds_and_margins_the_design_plans(profile):
    for row in design.DESIGNS.values():
        if row.seeds_param:
            got = _effective(profile, *row.seeds_param)
            assert got >= row.planned(profile), (row.claim, profile, got)
        if row.margin_param:
            assert _effective(profile, *row.margin_param) == row.margin[profile], (row.claim,
                                                                                   profile)
    # margins are per profile, never one absolute number for both where the scale differs (training
    # errors near 0)
    assert design.DESIGNS["D2"].margin["full"] < design.DESIGNS["D2"].margin["quick"]
    assert design.DESIGNS["A1"].margin["full"] < design.DESIGNS["A1"].margin["quick"]


def test_a_verdict_on_fewer_seeds_than_planned_is_underpowered():
    shallow = np.array([0.30, 0.31, 0.29])
    # three seeds, a huge effect: the rule alone supports
    d = degradation.d1(shallow, shallow + 0.2, shallow + 0.2)
    assert d.verdict == "supported" and d.numbers["seeds"] == 3
    held = apply_design(d, "quick")
    assert (held.verdict == "inconclusive"
            and held.numbers["underpowered"] == "3 seeds of the 5 the design plans")
    refuted = apply_design(degradation.d1(shallow + 0.2, shallow, shallow), "quick")
    assert (refuted.verdict == "inconclusive"
            and refuted.numbers["verdict_before_design"] == "refuted")
    five = np.array([0.30, 0.31, 0.29, 0.30, 0.32])
    kept = apply_design(degradation.d1(five, five + 0.2, five + 0.2), "quick")
    assert (kept.verdict == "supported" and kept.numbers["planned_seeds"] == 5
            and "underpowered" not in kept.numbers)


def test_observed_sd_recovers_the_spread_of_the_differences():
    rng = np.random.default_rng(0)
    diff = rng.normal(0.05, 0.02, 7)
    numbers = {"deep_minus_shallow": stats.paired_difference(diff, np.zeros(7)).as_dict(8)}
    sd, n = design.observed_sd(numbers, "deep_minus_shallow")
    assert n == 7 and sd == pytest.approx(np.std(diff, ddof=1), rel=1e-5)
    ni = {"x": stats.noninferiority(diff, np.zeros(7), 0.1).as_dict()}
    # 4 digits kept
    assert design.observed_sd(ni, "x")[0] == pytest.approx(np.std(diff, ddof=1), rel=1e-2)
    assert design.observed_sd({"x": {"low": -math.inf, "high": 1, "n": 1}}, "x") is None


def test_power_of_a_row_matches_simulating_its_rule():
    row = design.DESIGNS["D1"]
    sd = 0.015

    def draw(rng, n):
        shallow = rng.uniform(0.0, 0.05, n)
        return shallow, shallow + rng.normal(row.effect, sd, n)
    sim = stats.power_by_simulation(
        lambda s: degradation.d1(s[0], s[1], s[1]).verdict == "supported", draw, 5,
                                    sims=1500, seed=3)
    assert design.power(row, sd, 5) == pytest.approx(sim, abs=0.035)


def test_rates_need_six_seeds_and_the_planner_says_so():
    # 5 of 5: Clopper-Pearson lower bound 0.478, never above one half
    assert design.rate_power(5) == 0.0
    assert design.rate_power(6) == 1.0
    assert design.seeds_needed(design.DESIGNS["T3"], None) == 6
    assert design.seeds_needed(design.DESIGNS["D1"], 0.04) == stats.seeds_for_power(
        lambda n: stats.power_difference(0.02, 0.04, n))
    # no replicate: no power to compute
    assert design.seeds_needed(design.DESIGNS["D4"], 0.01) is None


def test_the_design_table_names_alpha_margin_and_seeds_per_profile():
    rows = {r["claim"]: r for r in design.table("full")}
    assert (rows["D2"]["margin"] == 0.005 and rows["D2"]["seeds"] == 5
            and rows["D2"]["alpha"] == 0.05)
    assert {r["claim"] for r in design.table("quick")} == set(design.DESIGNS)
    with pytest.raises(ValueError, match="kind='t'"):
        design.Design("X", "q", 0, "e", "s", "t", "t")


def test_smoke_runs_are_held_to_quicks_plan():
    row = design.DESIGNS["D2"]
    assert row.planned("smoke") == row.planned("quick") and row.margin_for(
        "smoke") == row.margin["quick"]
    assert design.power(row, 0.01, 5, "smoke") == design.power(row, 0.01, 5, "quick")
