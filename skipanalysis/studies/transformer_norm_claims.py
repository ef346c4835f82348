"""Notebook 05's tables and claims, read from what ``studies.transformer_norm`` trained and
measured: the run summary, the text task's evidence, T1's inputs and the claims T1-T4.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..claims import Finding
from ..rules import transformer_norm as rules
from .transformer_norm import TextRuns


def loglog_slope(x: list[float], y: list[float]) -> float:
    """Least-squares slope of log(y) against log(x): 0 for constant, -0.5 for 1/sqrt(x)."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def run_summary(*outcomes: pd.DataFrame) -> pd.DataFrame:
    """Runs, trained, diverged and converged counts and the median final loss per placement, depth,
    rate and warm-up, over the outcome tables given (a run in two of them, e.g. reused by the depth
    sweep, counts once)."""
    runs_ = pd.concat(outcomes).drop_duplicates(["norm", "depth", "lr", "warmup", "seed"])
    return runs_.groupby(["norm", "depth", "lr", "warmup"]).agg(
        runs=("trained", "size"), trained=("trained", "sum"), diverged=("diverged", "sum"),
        converged=("converged", "sum"), final_loss=("final_loss", "median"))


def text_evidence(text: TextRuns | None, claim: str) -> dict:
    """What ``text_study`` adds to T2's or T3's evidence: the task and that claim's verdict and
    numbers on it (the procedural verdict stays the recorded one); nothing without a text file."""
    if text is None:
        return {}
    d = text.decision(claim)
    return {"text_task": {"data": text.described, "verdict": d.verdict, "rule_numbers": d.numbers}}


def t1_inputs(grads: pd.DataFrame) -> dict[str, list]:
    """The last layer's W2 gradient norms as ``rules.t1`` reads them: per (depth, seed) point for
    each placement (with each point's seed), and per seed at the deepest depth (sorted seed order
    for both placements)."""
    last = grads[grads.layer == grads.depth].pivot_table(index=["depth", "seed"], columns="norm",
                                                         values="w2_grad")
    deepest = last.loc[last.index.get_level_values("depth").max()]
    return {"depths": [int(d) for d in last.index.get_level_values("depth")],
            "seeds": [int(s) for s in last.index.get_level_values("seed")],
            "post": list(last["post"]),
            "pre": list(last["pre"]), "post_deepest": list(deepest["post"]),
            "pre_deepest": list(deepest["pre"])}


# --- the claims: each helper returns (decision, headline) -----------------------------------------

def t1_claim(grads: pd.DataFrame, seeds: int):
    """T1 from ``grad_study``'s table: the last layer's gradient against depth for both
    placements."""
    d = rules.t1(**t1_inputs(grads))
    slope = lambda k: d.numbers.get(k, {}).get("estimate", float("nan"))  # noqa: E731
    return Finding(d,
                   f"last-layer gradient vs depth at init: log-log slope {slope('slope_post'):.2f} "
                   f"for post-norm, {slope('slope_pre'):.2f} for pre-norm (theory: 0 and -0.5; "
                   f"{seeds} seeds)")


def _text_clause(text: TextRuns | None, claim: str) -> str:
    if text is None:
        return ""
    return f"; on the text task ({text.task}): {text.decision(claim).verdict}"


def t2_claim(outs: pd.DataFrame, lrs: list[float], seeds: int, text: TextRuns | None = None):
    """T2 from ``warmup_grid``'s outcomes: what warm-up does for post-norm, and pre-norm without it
    (and, with ``text_study``'s result, that task's verdict in the headline)."""
    d = rules.t2(outs.to_dict("records"))
    slow = sum(d.numbers.get("trained only at twice the steps", {}).values())
    # a run that trained at twice the steps: trained
    outs = pd.DataFrame(rules.settled(outs.to_dict("records")))
    post0 = outs[(outs.norm == "post") & (outs.warmup == 0)]
    fails = ", ".join(f"{int((~post0[post0.lr == lr].trained).sum())}/{seeds} at lr {lr:g}"
                      for lr in lrs)
    warm = outs[(outs.norm == "post") & (outs.warmup > 0)].trained.sum()
    pre = outs[(outs.norm == "pre") & (outs.warmup == 0)].trained.sum()
    late = f" ({slow} more trained only at twice the steps)" if slow else ""
    runs = seeds * len(lrs)
    return Finding(d,
                   f"post-norm without warm-up fails in {fails}{late}; with warm-up it trains in "
                   f"{warm}/{runs} runs; pre-norm without warm-up in "
                   f"{pre}/{runs}" + _text_clause(text, "T2"))


def warmup_words(steps: int) -> str:
    """``"without warm-up"`` or ``"with 400 warm-up steps"``."""
    return f"with {steps} warm-up steps" if steps else "without warm-up"


def t3_claim(runs: pd.DataFrame, lr: float, seeds: int, text: TextRuns | None = None,
             warmup: int = 0):
    """T3 from ``depth_sweep``'s outcomes: runs that trained per placement and depth, with
    ``warmup`` steps (and, with ``text_study``'s result, that task's verdict in the headline)."""
    d = rules.t3(runs.to_dict("records"))
    rate = pd.DataFrame(rules.settled(runs.to_dict("records"))).groupby(
        ["norm", "depth"]).trained.sum()
    return Finding(d, f"{warmup_words(warmup)} at lr {lr:g}, runs that trained: " + "; ".join(
               f"depth {dp}: post-norm {rate['post', dp]}/{seeds}, pre-norm "
               f"{rate['pre', dp]}/{seeds}"
               for dp in sorted(runs.depth.unique())) + _text_clause(text, "T3"))


def t4_claim(reversal: pd.DataFrame, control: pd.DataFrame, window: int):
    """T4 from ``reach_study``'s per-model tables on the reversal task and on the local control
    (both placements, every seed)."""
    both = pd.concat([reversal.assign(task="reversal"), control.assign(task="control")],
                     ignore_index=True)
    d = rules.t4(both.task, both.far_share, both.reach_change, both.trained, both.input_dependence,
                 float(reversal.uniform_distance.iloc[0]), seeds=both.seed)
    med = lambda t, c: t[c].median()  # noqa: E731
    return Finding(d, "in the layer training moved most, attention reaches "
                      f"{med(reversal, 'reach_change'):+.1f} tokens farther than at initialisation "
                      f"on reversal and {med(control, 'reach_change'):+.1f} on the local control "
                      f"(uniform attention: {reversal.uniform_distance.iloc[0]:.1f}); on reversal "
                      f"{med(reversal, 'far_share'):.0%} of the farthest layer's attention lies "
                      f"beyond {window} tokens, input dependence "
                      f"{med(reversal, 'input_dependence'):.2f} (at init "
                      f"{med(reversal, 'input_dependence_init'):.2f}); medians over "
                      f"{len(reversal)} models a task")
