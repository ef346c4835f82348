"""``make plan``: what would decide each open claim, and what it would cost here. Trains nothing.

It reads the last claims of a profile (``reports/<profile>/claims/*.json``) and the run store, and
prints for each empirical claim its verdict, the power of its design (``skipanalysis.design``) at
the stated effect from the spread its runs showed, and for a claim that is not decided: why (a run
did not converge, fewer seeds than planned, too few runs, the effect lies inside the noise or the
margin, or the rule's parts disagree), the seeds that would give power 0.8 at the stated effect, and
what those seeds would cost on this machine from the stored runs' wall times. A claim open because a
run did not converge needs steps, not seeds: the plan prices the notebook's planned seeds trained
again for ``STEPS_FACTOR`` times the steps.

    python -m skipanalysis.pipeline.plan --reports reports/quick [--store runs]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import design as dsg
from ..claims import CATALOGUE, load_claims
from ..runs import RunStore
from ..selection import SELECTION_OFFSET

# The run store's ``study`` tag of each notebook's training runs (01's depth runs also serve 02's
# lesions and 07).
STUDY_NOTEBOOK = {"depth": "01_degradation", "construction": "01_degradation",
                  "gradients": "02_gradient_flow",
                  "gradients-at-init": "02_gradient_flow", "lesions": "02_gradient_flow",
                  "decodability": "03_equivalence", "cost": "04_cost",
                  "norm": "05_transformer_norm",
                  "norm-at-init": "05_transformer_norm",
                  "unet": "06_unet_skips", "landscape": "07_loss_landscape",
                  "efficiency": "08_param_efficiency"}
BLOCKERS = (("underpowered", "fewer seeds than planned"),
            ("not converged", "a run did not converge"),
            ("too few", "too few runs"), ("too few runs", "too few runs"),
            ("fewer than 5 seeds", "too few runs"),
            ("did not learn", "a net did not learn"),
            ("deep plain net", "the deep plain net did not leave chance"),
            ("decoder check", "the decoder failed its check"),
            ("construction", "the construction did not reproduce"),
            ("points", "nothing measured"),
            ("control", "the arms genuinely disagree with the matched control"),
            ("densenet", "the arms genuinely disagree"))


# what "more steps" means in the plan: every run of the notebook's planned seeds, twice as long
STEPS_FACTOR = 2.0


def why_open(record: Mapping[str, Any]) -> str:
    """Why an inconclusive verdict stayed open, from its rule's numbers."""
    nums = (record.get("evidence") or {}).get("rule_numbers") or {}
    for key, reason in BLOCKERS:
        if key in nums:
            return f"{reason} ({nums[key]})"
    row = dsg.design(record["id"])
    iv = dsg.find(nums, row.primary) if row and row.primary else None
    if isinstance(iv, Mapping):
        margin = iv.get("margin")
        iv = iv.get("difference", iv)
        if {"low", "high"} <= set(iv):
            edge = 0.0 if margin is None or row.kind == "difference" else margin
            lo, hi = iv["low"], iv["high"]
            if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo <= edge <= hi:
                what = "the margin" if edge else "0"
                return (
                    f"the effect lies inside the noise: {row.primary} [{lo:.4g}, {hi:.4g}] holds "
                    f"{what}")
    return "the rule's parts disagree or no part is shown (see its numbers)"


def seconds_per_seed(store: RunStore, since: Mapping[str, float] | None = None) -> dict[str, float]:
    """Per notebook, what one more compared seed costs: the median over seeds of a seed's stored
    training time (selection-seed runs left out: a new seed does not repeat them; the median, so a
    run slowed by a busy machine or a rate grid tried on one seed does not set the price).

    ``since``: per notebook, when its last execution started (``last_executions``); only the runs
    saved or loaded since then count (``RunStore.used_since``), so runs that newer code or
    parameters superseded set no price. A notebook without an entry, or none of whose runs carries
    the mark (a store older than it), counts every stored run of its studies."""
    notebook_of = lambda rec: STUDY_NOTEBOOK.get((rec.get("config") or {}).get("study"))  # noqa: E731
    used = {nb: {r["key"] for r in store.used_since(t) if notebook_of(r) == nb} for nb,
            t in (since or {}).items()}
    used = {nb: keys for nb, keys in used.items() if keys}
    per = defaultdict(lambda: defaultdict(float))
    for rec in store.records():
        cfg = rec.get("config") or {}
        # most studies name the seed in the config; 05's encoder runs keep it in their recipe
        nb, seed = notebook_of(rec), cfg.get("seed", (cfg.get("recipe") or {}).get("seed"))
        if nb is None or not isinstance(seed, int) or seed >= SELECTION_OFFSET:
            continue
        if nb in used and rec.get("key") not in used[nb]:
            continue
        per[nb][seed] += float(rec.get("seconds") or 0.0)
    return {nb: float(np.median(list(seeds.values()))) for nb, seeds in per.items()}


def last_executions(reports: str | Path) -> dict[str, float]:
    """When each executed notebook under ``reports`` last started (papermill's ``start_time``), in
    seconds since the epoch; notebooks without that record are left out."""
    import json
    from datetime import datetime

    out = {}
    for path in Path(reports).glob("[0-9]*.ipynb"):
        try:
            start = (
                json.loads(path.read_text(encoding="utf-8"))["metadata"]["papermill"]["start_time"])
            out[path.stem] = datetime.fromisoformat(start).timestamp()
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def assess(reports: str | Path, store: RunStore | None = None) -> pd.DataFrame:
    """One row per empirical claim recorded under ``reports``: verdict, design seeds, spread, power,
    and for an open claim the reason, the seeds for power 0.8 and their estimated cost here."""
    books = load_claims(reports)
    if not books:
        raise FileNotFoundError(
            f"no claims under {Path(reports) / 'claims'}: run the notebooks first "
                                f"(make report, or PROFILE=<profile> make report)")
    return assess_books(books, seconds_per_seed(store, last_executions(reports))
                        if store is not None else {})


def assess_books(books: list[dict[str, Any]],
                 per_seed: Mapping[str, float] | None = None) -> pd.DataFrame:
    """``assess`` on loaded claim books; ``per_seed``: seconds of training per seed and notebook
    (for costs)."""
    per_seed = per_seed or {}
    rows = []
    for book in books:
        profile = book.get("profile", "quick")
        for rec in book.get("claims", []):
            row = dsg.design(rec["id"])
            if row is None or rec.get("kind") == "identity":
                continue
            nums = (rec.get("evidence") or {}).get("rule_numbers") or {}
            spread = dsg.observed_sd(nums, row.primary) if row.primary else None
            sd, n = spread if spread else (None, nums.get(f"{row.unit}s"))
            planned = row.planned(profile)
            pw = dsg.power(row, sd, planned, profile) if planned else None
            need = dsg.seeds_needed(row, sd, profile)
            open_ = rec["verdict"] == "inconclusive"
            why = why_open(rec) if open_ else ""
            rates_open = open_ and row.kind == "rates" and why.startswith("the rule's parts")
            obs = dsg.observed_rates(rec["id"], nums) if rates_open else None
            # all-or-none was stated, the runs showed less: the seeds the shares seen would need
            if obs:
                need = dsg.seeds_at_observed_rates(obs)
                why = (f"the effect lies inside the noise: trained shares {obs['p_train']:.2f} "
                       f"against {obs['p_fail']:.2f} at {obs['where']}, short of the stated "
                       "all-or-none; seeds for power 0.8 at those shares (Holm over "
                       f"{obs['tests']})")
            nb = CATALOGUE[rec["id"]].notebook
            cost = steps_cost = None
            if open_ and need is not None and planned and nb in per_seed and need > (n or planned):
                cost = per_seed[nb] * (need - (n or planned))
            if open_ and "not converged" in nums and planned and nb in per_seed:
                # from scratch: each run's time scales with steps
                steps_cost = per_seed[nb] * planned * STEPS_FACTOR
            rows.append(
                {"claim": rec["id"], "device": rec.get("device", ""), "verdict": rec["verdict"],
                         "seeds": n, "planned": planned, "sd": sd, "effect": row.effect_text,
                         "power": pw, "seeds_needed": need,
                         "why_open": why,
                         "sensitivity": nums.get("sensitivity", ""), "extra_cost_s": cost,
                         "steps_cost_s": steps_cost})
    return pd.DataFrame(rows)


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None or pd.isna(v) else format(float(v), spec)


def render(table: pd.DataFrame) -> str:
    """The plan as text: decided claims on one line each, open claims with their reason and what
    would decide them."""
    lines = []
    for r in table.itertuples(index=False):
        head = (
            f"{r.claim:<3} {r.verdict:<17} seeds {_fmt(r.seeds, '.0f')}/{_fmt(r.planned, '.0f')}  "
                f"power at the stated effect ({r.effect}): {_fmt(r.power, '.2f')}")
        lines.append(head)
        if r.verdict == "inconclusive":
            need = r.seeds_needed
            if need is not None and not pd.isna(need):
                what = f"{need:.0f} seeds give power 0.8"
            elif r.power is not None and not pd.isna(r.power):
                what = (
                    "even 200 seeds fall short of power 0.8 at this spread (fix the runs, not the "
                    "seeds)")
            else:
                what = "no power formula for this design (see its rule)"
            cost = (f", about {r.extra_cost_s / 60:.1f} min more training here"
                    if r.extra_cost_s is not None and not pd.isna(r.extra_cost_s) else "")
            lines.append(f"      open: {r.why_open}; {what}{cost}")
            if r.steps_cost_s is not None and not pd.isna(r.steps_cost_s):
                lines.append(
                    f"      more steps: its {r.planned:.0f} planned seeds trained for "
                    f"{STEPS_FACTOR:g}x the steps, about {r.steps_cost_s / 60:.1f} min of training "
                    "here")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skipanalysis.pipeline.plan",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--reports", default="reports/quick",
                    help="a report folder (its claims/ is read)")
    ap.add_argument("--store", default=None,
                    help="the run store (default: runs/ or SKIPANALYSIS_RUNS)")
    args = ap.parse_args(argv)
    try:
        table = assess(args.reports, RunStore(args.store))
    except FileNotFoundError as exc:
        print(f"[plan] {exc}", file=sys.stderr)
        return 2
    print(render(table))
    open_ = int((table.verdict == "inconclusive").sum())
    print(
        f"[plan] {len(table)} empirical verdicts, {open_} open; power is for the design's seeds at "
        "the stated effect, from the spread the runs showed (noncentral t; simulation for rates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
