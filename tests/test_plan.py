"""make plan (skipanalysis.pipeline.plan): why each open claim is open, the seeds for power 0.8 and
their cost here, from a report's claims and a run store; it trains nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skipanalysis import stats
from skipanalysis.claims import ClaimBook
from skipanalysis.pipeline import plan
from skipanalysis.rules import degradation, transformer_norm
from skipanalysis.runs import RunStore

WOBBLE = np.array([0.0, 0.012, -0.01, 0.006, -0.008])


def _report(tmp_path):
    book = ClaimBook("01_degradation", tmp_path, "cpu", "quick")
    shallow = 0.30 + WOBBLE
    # D1 open for noise: deep minus shallow about 1 point with a 1.5-point spread
    noisy = shallow + 0.01 + np.array([0.02, -0.015, 0.01, -0.02, 0.012])
    book.record("D1", degradation.d1(shallow, noisy, noisy), evidence={}, headline="h")
    # D2 decided on 3 seeds: underpowered by the design's 5
    book.record("D2", degradation.d2(shallow[:3], shallow[:3] + 0.001, shallow[:3] + 0.3, 0.02),
                evidence={},
                headline="h")
    # D5 open: a run did not converge
    book.record("D5", degradation.d5(shallow + 0.3, shallow, shallow, 0.02, [True] * 14 + [False]),
                evidence={},
                headline="h")
    return tmp_path, noisy - shallow


def _store(tmp_path):
    store = RunStore(tmp_path / "runs")
    # 01's depth runs: 12 s a seed (two runs of 6 s, the median); other studies do not count
    for seed in range(5):
        for k in range(2):
            store.save(f"{seed}{k}" + "a" * 62, {"study": "depth", "seed": seed}, {}, 6.0)
    store.save("f" * 64, {"study": "unet", "seed": 0}, {}, 100.0)
    # a selection run: not a seed's cost
    store.save("e" * 64, {"study": "depth", "seed": 10_000}, {}, 500.0)
    # one run slowed by a busy machine
    store.save("d" * 64, {"study": "depth", "seed": 4}, {}, 300.0)
    # 05 keeps the seed in its recipe
    store.save("c" * 64, {"study": "norm", "recipe": {"seed": 0}}, {}, 7.0)
    return store


def test_plan_names_why_each_claim_is_open_and_what_would_decide_it(tmp_path):
    reports, diff = _report(tmp_path)
    table = plan.assess(reports, _store(tmp_path)).set_index("claim")
    d1 = table.loc["D1"]
    assert d1.verdict == "inconclusive" and d1.why_open.startswith(
        "the effect lies inside the noise")
    sd = np.std(diff, ddof=1)
    assert d1.sd == pytest.approx(sd, rel=1e-2)
    # the stated effect: 2 points
    need = stats.seeds_for_power(lambda n: stats.power_difference(0.02, sd, n))
    assert d1.seeds_needed == need and d1.power == pytest.approx(
        stats.power_difference(0.02, sd, 5), rel=1e-2)
    assert d1.extra_cost_s == pytest.approx(12.0 * (need - 5))  # 12 s a seed of 01's stored runs
    assert table.loc["D2"].why_open.startswith("fewer seeds than planned (3 seeds of the 5")
    assert table.loc["D5"].why_open.startswith("a run did not converge (1 of 15 runs)")
    # 5 planned seeds of 12 s, twice as long
    assert table.loc["D5"].steps_cost_s == pytest.approx(12.0 * 5 * 2)
    assert pd.isna(table.loc["D1"].steps_cost_s)  # open for noise: steps are not what it needs
    assert plan.seconds_per_seed(_store(tmp_path / "again"))["05_transformer_norm"] == 7.0
    text = plan.render(table.reset_index())
    assert ("more steps: its 5 planned seeds trained for 2x the steps, "
            "about 2.0 min of training here") in text
    assert (f"{need} seeds give power 0.8, "
            f"about {12.0 * (need - 5) / 60:.1f} min more training here") in text


def test_plan_on_an_empty_report_says_what_to_run_first(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="run the notebooks first"):
        plan.assess(tmp_path)
    assert plan.main(["--reports", str(tmp_path), "--store", str(tmp_path / "runs")]) == 2
    assert "make report" in capsys.readouterr().err


def test_the_paper_appendix_states_the_design_power_and_sensitivity(tmp_path):
    from skipanalysis.claims import load_claims
    from skipanalysis.pipeline import paper

    reports, _ = _report(tmp_path)
    design_cell, power_cell = paper.design_appendix_cells(load_claims(reports), "full")
    # full's margin and seeds
    assert "| D2 |" in design_cell.source and "| 0.005 | 5 |" in design_cell.source
    assert "0.05 two-sided" in design_cell.source
    d2 = next(line for line in power_cell.source.splitlines() if line.startswith("| D2 |"))
    assert "| inconclusive | 3 / 5 |" in d2  # underpowered: 3 of the 5 planned seeds


def test_superseded_runs_set_no_price(tmp_path):
    import json
    import os
    import time

    store = _store(tmp_path)
    old = time.time() - 3600
    for path in store.root.glob("??/*/record.json"):  # every run saved an hour ago
        os.utime(path, (old, old))
    # the notebook's last execution: it loaded seeds 0-2 of 01's runs, 6 s a run
    start = time.time() - 60
    for seed in range(3):
        for k in range(2):
            assert store.load(f"{seed}{k}" + "a" * 62) is not None
    # and trained seed 3 anew (new code): 40 s
    store.save("b" * 64, {"study": "depth", "seed": 3}, {}, 40.0)
    # every stored run: the old seed 3, 4 count
    assert plan.seconds_per_seed(store)["01_degradation"] == 12.0
    # counting the runs behind the last execution: seeds 0-2 at 12 s, seed 3 at 40 s, superseded
    # seed 4 gone
    per_seed = plan.seconds_per_seed(store, {"01_degradation": start})["01_degradation"]
    assert per_seed == pytest.approx(float(np.median([12.0, 12.0, 12.0, 40.0])))
    # a store none of whose runs carries the mark (older than it): every stored run counts, as
    # without since
    assert plan.seconds_per_seed(store,
                                 {"01_degradation": time.time() + 60})["01_degradation"] == 12.0
    nb = tmp_path / "01_degradation.ipynb"  # papermill's record of when that execution started
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start))
    nb.write_text(json.dumps({"metadata": {"papermill": {"start_time": stamp}}}))
    assert plan.last_executions(tmp_path)["01_degradation"] == pytest.approx(int(start), abs=1)


def _exact_rate_power(n: int, p_train: float, p_fail: float, alpha: float) -> float:
    """The same decision as design.rate_power, its power by summing over every outcome (no
    simulation)."""
    from scipy.stats import binom, fisher_exact

    total = 0.0
    for a in range(n + 1):
        if stats.clopper_pearson(a, n).low <= 0.5:
            continue
        for b in range(n + 1):
            if fisher_exact([[a, n - a], [b, n - b]], alternative="greater").pvalue < alpha:
                total += binom.pmf(a, n, p_train) * binom.pmf(b, n, p_fail)
    return total


def test_a_rate_claim_short_of_all_or_none_gets_the_seeds_its_observed_shares_need(tmp_path):
    book = ClaimBook("05_transformer_norm", tmp_path, "cpu", "quick")
    # the quick numbers: at lr 0.003 post-norm trains in 6/6 with warm-up and 4/6 without (one of
    # them slow)
    arms = (("post", 0), ("post", 50), ("pre", 0))
    runs = [{"norm": n, "lr": lr, "warmup": w, "seed": s, "diverged": False, "converged": True,
             "trained": not (n == "post" and lr == 0.003 and not w and s < 2)}
            for lr in (0.001, 0.003) for n, w in arms for s in range(6)]
    book.record("T2", transformer_norm.t2(runs), evidence={}, headline="h")
    row = plan.assess(tmp_path).set_index("claim").loc["T2"]
    assert (row.verdict == "inconclusive"
            and "trained shares 1.00 against 0.67 at lr 0.003" in row.why_open)
    exact = stats.seeds_for_power(lambda n: _exact_rate_power(n, 1.0, 4 / 6, 0.025), 0.8, start=2,
                                  most=60)
    # simulation (300 draws a size) against exact enumeration
    assert abs(row.seeds_needed - exact) <= 2
