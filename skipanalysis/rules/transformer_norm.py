"""Rules for notebook 05 (transformer norm placement): T1-T4.

Training outcomes are per seed: a run *trains* when it did not diverge and its mean training loss
over the last 10% of its steps is below half of chance (ln V); it *diverged* when the loss turned
NaN/inf or exceeded 10 times its first value (training stops there), or ended above where it
started; a run that does neither is *stuck*. Rates of training are compared with Newcombe's hybrid
score interval for a difference of two proportions (built from Wilson intervals; it ignores the
pairing by seed, so it is conservative); a share's own interval is Clopper-Pearson's exact one, and
"at some rate" or "at some depth" is decided by Fisher's exact test at each, Holm-corrected over
them. A stuck run that had not converged (its loss still falling, ``train.convergence``) might have
trained with more steps; it is trained again from scratch for twice the steps
(``studies.transformer_norm.settle_stuck``), and when that run does not train either the failure
counts as a stall; otherwise the verdict says "not converged".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .. import stats
from .core import RULES, Decision, _decide, needed, rule
from .cost import ratio_interval

__all__ = ["rate_difference", "settled", "t1", "t2", "t3", "t4"]

MIN_SEEDS = 5


def rate_difference(s1: int, n1: int, s2: int, n2: int,
                    level: float = stats.LEVEL) -> stats.Interval:
    """Difference of two independent proportions ``s1/n1 - s2/n2`` with Newcombe's hybrid score
    interval.

    Newcombe 1998 (Statistics in Medicine 17, method 10): with Wilson intervals ``[l1, u1]`` and
    ``[l2, u2]``, ``low = d - sqrt((p1 - l1)^2 + (u2 - p2)^2)`` and ``high = d + sqrt((u1 - p1)^2 +
    (p2 - l2)^2)``.
    """
    a, b = stats.wilson(s1, n1, level), stats.wilson(s2, n2, level)
    p1, p2 = s1 / n1, s2 / n2
    d = p1 - p2
    low = d - math.sqrt((p1 - a.low) ** 2 + (b.high - p2) ** 2)
    high = d + math.sqrt((a.high - p1) ** 2 + (p2 - b.low) ** 2)
    return stats.Interval(d, max(-1.0, low), min(1.0, high), n1 + n2,
                          "Newcombe hybrid score (Wilson)", level)


def _rate(flags: Sequence[bool]) -> stats.Interval:
    return stats.clopper_pearson(sum(bool(f) for f in flags), len(flags))


def more_often(a: Sequence[bool], b: Sequence[bool]) -> float:
    """One-sided p-value of Fisher's exact test that arm ``a`` trains more often than arm ``b``
    (pairing by seed ignored: conservative)."""
    from scipy.stats import fisher_exact

    ka, kb = sum(bool(x) for x in a), sum(bool(x) for x in b)
    return float(fisher_exact([[ka, len(a) - ka], [kb, len(b) - kb]], alternative="greater").pvalue)


def _at_2x(r: dict[str, Any]) -> bool | None:
    """``stuck_at_2x`` of a run: True (still stuck at twice the steps), False (trained there), None
    (not checked)."""
    v = r.get("stuck_at_2x")
    return bool(v) if isinstance(v, (bool, np.bool_)) else None


def _unsettled(runs: Iterable[dict[str, Any]]) -> int:
    """Stuck runs (neither trained nor diverged) whose loss had not stopped falling and that were
    not trained again for twice the steps (``stuck_at_2x`` missing): nothing tells their slowness
    from a stall."""
    return sum(1 for r in runs if not r["trained"] and not r["diverged"]
               and not r.get("converged", True)
               and _at_2x(r) is None)


def settled(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs with ``trained`` as the rules read it: a stuck run that trained when trained again
    from scratch for twice the steps (``stuck_at_2x`` False) counts as trained (slow, not unstable);
    one still stuck there as failed."""
    return [{**r, "trained": bool(r["trained"]) or _at_2x(r) is False} for r in runs]


def _slow(runs: Sequence[dict[str, Any]], *keys: str) -> dict[str, int]:
    """Per arm, the runs that trained only at twice the steps (reported beside the counts)."""
    out: dict[str, int] = defaultdict(int)
    for r in runs:
        if not r["trained"] and _at_2x(r) is False:
            out[" ".join(f"{k}={r[k]}" if k != "norm" else str(r[k]) for k in keys)] += 1
    return dict(out)


def _not_converged(claim: str, runs: list[dict[str, Any]], nums: dict[str, Any]) -> Decision | None:
    k = _unsettled(runs)
    if k:
        return Decision(claim, "inconclusive", RULES[claim].text,
                        {**nums,
                         "not converged": f"{k} of {len(runs)} runs stuck with a still-falling "
                                          "loss, not trained again for twice the steps"})
    return None


def _few_seeds(claim: str, groups: dict, nums: dict[str, Any]) -> Decision | None:
    small = {str(k): len(v) for k, v in groups.items() if len(v) < needed(MIN_SEEDS)}
    if small:
        return Decision(claim, "inconclusive", RULES[claim].text,
                        {**nums, "fewer than 5 seeds": small})
    return None


@rule("T1", """At initialisation, for each placement, the gradient norm of the last block's second
feed-forward weight per seed and depth (at least 5 seeds, three or more depths); the least-squares
slope of log norm on log depth with its 95% interval over seeds (one slope per seed over all its
depths, t over the seeds; Xiong et al.: 0 for post-norm, -0.5 for pre-norm). Supported if
post-norm's slope interval lies above -0.25 (not shrinking), pre-norm's lies below 0 and below
post-norm's, and post-norm's gradient at the deepest depth is larger than pre-norm's (geometric mean
ratio over seeds, 95% paired interval above 1). Refuted if post-norm's slope interval lies below
-0.25, or pre-norm's lies at or above 0, or pre-norm's lies above post-norm's. Inconclusive
otherwise.""", per_seed=("post_deepest", "pre_deepest"), labelled=("depths", "post",
"pre"), labels="seeds")
def t1(depths: Sequence[int], post: Sequence[float], pre: Sequence[float],
       post_deepest: Sequence[float],
       pre_deepest: Sequence[float], n_boot: int = 2000, seeds: Sequence | None = None) -> Decision:
    """``depths``, ``post``, ``pre``: one entry per (depth, seed) point, ``seeds`` naming each
    point's seed; ``*_deepest``: per seed at the deepest depth, in sorted seed order for both
    placements."""
    per_depth = defaultdict(int)
    for d in depths:
        per_depth[d] += 1
    nums: dict[str, Any] = {"points_per_depth": dict(per_depth)}
    if len(per_depth) < 3 or min(per_depth.values()) < needed(MIN_SEEDS):
        return Decision("T1", "inconclusive", RULES["T1"].text,
                        {**nums, "too few": "need 3 depths x 5 seeds"})
    logd = [math.log(d) for d in depths]
    s_post = stats.slope_interval(logd, [math.log(v) for v in post], n_boot, groups=seeds)
    s_pre = stats.slope_interval(logd, [math.log(v) for v in pre], n_boot, groups=seeds)
    ratio = ratio_interval(post_deepest, pre_deepest, unit="seed")
    nums.update(slope_post=s_post.as_dict(), slope_pre=s_pre.as_dict(),
                post_over_pre_deepest=ratio.as_dict())
    supported = s_post.low > -0.25 and s_pre.high < 0 and s_pre.high < s_post.low and ratio.low > 1
    refuted = s_post.high < -0.25 or s_pre.low >= 0 or s_pre.low > s_post.high
    return _decide("T1", supported, refuted, nums)


def _group(runs: Sequence[dict[str, Any]], *keys: str) -> dict[tuple, list[dict[str, Any]]]:
    out: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        out[tuple(r[k] for k in keys)].append(r)
    return dict(out)


@rule("T2", """Per learning rate, at least 5 seeds per arm: post-norm without warm-up, post-norm
with warm-up, pre-norm without warm-up. A run trains when it did not diverge and its mean training
loss over the last 10% of steps is below half of chance (ln V); it diverged when the loss turned
NaN/inf, exceeded 10x its first value, or ended above its start. Warm-up helps post-norm at a rate
when the 95% Newcombe interval of (trained share with warm-up minus without) lies above 0; pre-norm
trains without warm-up when its trained share's 95% Wilson interval lies above 0.5, and fails when
it lies below 0.5. Supported if at some rate warm-up helps post-norm while pre-norm trains without
it, and at no rate pre-norm fails where warmed-up post-norm trains (Wilson interval above 0.5).
Refuted if pre-norm fails where warmed-up post-norm trains, or if warm-up helps post-norm at no rate
while post-norm without warm-up trains at every rate. Inconclusive otherwise. A stuck run (neither
trained nor diverged) whose loss was still falling is trained again from scratch for twice the
steps: it counts as trained when it trains there (slow, not unstable: an arm's runs may need more
steps, which the claim is not about) and as failed when it does not (a stall); such runs are
reported apart, and a stuck run not checked so leaves the verdict inconclusive.""",
      per_seed=("runs",))
def t2(runs: Sequence[dict[str, Any]]) -> Decision:
    """``runs``: one dict per run with ``norm`` ('post'/'pre'), ``lr``, ``warmup`` (steps, 0 for
    none), ``trained``, ``diverged`` and ``converged`` (and ``stuck_at_2x`` where ``settle_stuck``
    checked it)."""
    slow = _slow(runs, "norm", "lr", "warmup")
    runs = settled(runs)
    groups = _group(runs, "norm", "lr", "warmup")
    lrs = sorted({r["lr"] for r in runs})
    nums: dict[str, Any] = {
        "trained": {f"{n} lr={lr:g} warmup={w}": f"{sum(x['trained'] for x in g)}/{len(g)}"
                                        for (n, lr, w), g in sorted(groups.items())},
                            "diverged": {f"{n} lr={lr:g} warmup={w}": sum(x["diverged"] for x in g)
                                         for (n, lr, w), g in sorted(groups.items())}}
    if slow:
        nums["trained only at twice the steps"] = slow
    per_lr, p_helps, pre_ok, pre_fails, post_fine = {}, {}, [], [], []
    for lr in lrs:
        post0 = groups.get(("post", lr, 0), [])
        postw = [r for (n, l_, w), g in groups.items() if n == "post" and l_ == lr and w > 0
                 for r in g]
        pre0 = groups.get(("pre", lr, 0), [])
        few = _few_seeds("T2",
                         {f"post lr={lr:g} no warm-up": post0, f"post lr={lr:g} warm-up": postw,
                                f"pre lr={lr:g} no warm-up": pre0}, nums)
        if few is not None:
            return few
        eff = rate_difference(sum(r["trained"] for r in postw), len(postw),
                              sum(r["trained"] for r in post0), len(post0))
        r_pre, r_postw, r_post0 = _rate([r["trained"] for r in pre0]), _rate(
            [r["trained"] for r in postw]), \
            _rate([r["trained"] for r in post0])
        per_lr[f"{lr:g}"] = {"warmup_effect_post": eff.as_dict(), "pre_no_warmup": r_pre.as_dict(),
                             "post_warmup": r_postw.as_dict(), "post_no_warmup": r_post0.as_dict()}
        p_helps[f"{lr:g}"] = more_often([r["trained"] for r in postw],
                                        [r["trained"] for r in post0])
        per_lr[f"{lr:g}"]["warmup_helps_p"] = round(p_helps[f"{lr:g}"], 5)
        pre_ok.append(r_pre.low > 0.5)
        pre_fails.append(r_pre.high < 0.5 and r_postw.low > 0.5)
        post_fine.append(r_post0.low > 0.5)
    nums["per_lr"] = per_lr
    holm = stats.holm(p_helps)
    helps = [holm["rejected"][f"{lr:g}"] for lr in lrs]
    nums["warmup_helps_holm"] = {
        "adjusted_p": {k: round(v, 5) for k, v in holm["adjusted"].items()},
                                 "method": holm["method"]}
    if (d := _not_converged("T2", list(runs), nums)) is not None:
        return d
    supported = any(h and p for h, p in zip(helps, pre_ok)) and not any(pre_fails)
    refuted = any(pre_fails) or (all(post_fine) and not any(helps))
    return _decide("T2", supported, refuted, nums)


@rule("T3", """Without warm-up at one learning rate, at least 5 seeds per placement and depth. A run
trains when it did not diverge and its mean training loss over the last 10% of steps is below half
of chance (ln V); it fails otherwise, whether it diverged (loss NaN/inf, above 10x its first value,
or ending above its start) or stuck (the diverged share is reported apart). Per depth, Fisher's
exact one-sided tests of pre-norm training more often than post-norm and of the reverse, each
Holm-corrected over the depths (the 95% Newcombe interval of the difference is reported). Supported
if at some depth pre-norm trains more often (Holm-adjusted p below 0.05) while its trained share has
a 95% Clopper-Pearson interval above 0.5, and at no depth post-norm trains more often. Refuted if at
some depth post-norm trains more often (post-norm trains where pre-norm fails). Inconclusive
otherwise (e.g. both train at every depth tested: the range is too shallow). A stuck run whose loss
was still falling is trained again from scratch for twice the steps: it counts as trained when it
trains there (slow) and as failed when it does not (a stall); such runs are reported apart, and a
stuck run not checked so leaves the verdict inconclusive.""", per_seed=("runs",))
def t3(runs: Sequence[dict[str, Any]]) -> Decision:
    """``runs``: one dict per run with ``norm``, ``depth``, ``trained``, ``diverged`` and
    ``converged`` (and ``stuck_at_2x`` where ``settle_stuck`` checked it)."""
    slow = _slow(runs, "norm", "depth")
    runs = settled(runs)
    groups = _group(runs, "norm", "depth")
    nums: dict[str, Any] = {"trained only at twice the steps": slow} if slow else {}
    depths = sorted({r["depth"] for r in runs})
    if (d := _few_seeds("T3", {f"{n} depth {dp}": groups.get((n, dp), []) for n in ("post", "pre")
                               for dp in depths},
                        nums)) is not None:
        return d
    per_depth, p_win, p_loss, pre_ok = {}, {}, {}, {}
    for dp in depths:
        pre, post = groups[("pre", dp)], groups[("post", dp)]
        diff = rate_difference(sum(r["trained"] for r in pre), len(pre),
                               sum(r["trained"] for r in post), len(post))
        r_pre = _rate([r["trained"] for r in pre])
        per_depth[str(dp)] = {"pre_minus_post_trained": diff.as_dict(),
                              "pre_trained": r_pre.as_dict(),
                              "post_trained": _rate([r["trained"] for r in post]).as_dict(),
                              "post_diverged": f"{sum(r['diverged'] for r in post)}/{len(post)}",
                              "pre_diverged": f"{sum(r['diverged'] for r in pre)}/{len(pre)}"}
        trained = {k: [r["trained"] for r in v] for k, v in (("pre", pre), ("post", post))}
        p_win[str(dp)], p_loss[str(dp)] = more_often(trained["pre"], trained["post"]), \
            more_often(trained["post"], trained["pre"])
        pre_ok[str(dp)] = r_pre.low > 0.5
    nums["per_depth"] = per_depth
    win, loss = stats.holm(p_win), stats.holm(p_loss)
    nums["holm"] = {
        "pre_more_often_adjusted_p": {k: round(v, 5) for k, v in win["adjusted"].items()},
                    "post_more_often_adjusted_p": {k: round(v, 5) for k,
                                                   v in loss["adjusted"].items()},
                    "method": win["method"]}
    wins = [win["rejected"][k] and pre_ok[k] for k in p_win]
    losses = list(loss["rejected"].values())
    if (d := _not_converged("T3", list(runs), nums)) is not None:
        return d
    return _decide("T3", any(wins) and not any(losses), any(losses), nums)


# T4: mean total-variation distance between two inputs' attention rows, fixed before runs
INPUT_DEPENDENCE_FLOOR = 0.05
FIXED_PATTERN = 0.01  # T4: below this the attention is one pattern for every input


@rule("T4", """Two tasks on held-out sequences: reversal (the answer at position i is the token at
L-1-i, so every output needs a far token) and a local control (the answer at i is the token before
it). Per trained model (both placements, every seed; at least 5 models that trained on each task):
the change of attention-weighted token distance (trained minus the same model at initialisation) in
the layer that training moved most (the largest change in size over layers, with its sign); on
reversal also the largest share of attention mass beyond the local window over layers and the input
dependence (total-variation distance between two inputs' attention rows at the same query, mean over
queries and layers). Supported if the 95% interval over models of that change lies above 0 on
reversal and below 0 on the control (the same architecture learns to reach far or to stay near, as
the task needs) and the input dependence's 95% interval lies above 0.05 (the pattern changes with
the input). Refuted if on reversal that change's interval lies below 0 or the far share's interval
lies below 0.2 (attention stays local where the task needs far tokens), or the input dependence's
interval lies below 0.01 (one fixed pattern for every input). Inconclusive otherwise, or with fewer
than 5 trained models on either task.""",
      labelled=("task", "far_share", "reach_change", "trained", "input_dependence"), labels="seeds")
def t4(task: Sequence[str], far_share: Sequence[float], reach_change: Sequence[float],
       trained: Sequence[bool],
       input_dependence: Sequence[float], uniform_distance: float | None = None,
       seeds: Sequence | None = None) -> Decision:
    """One entry per model and task (``task`` is ``"reversal"`` or ``"control"``; both placements,
    every seed); ``seeds`` names each entry's seed."""
    keep = {t: [i for i, (k, ok) in enumerate(zip(task, trained)) if k == t and ok]
            for t in ("reversal", "control")}
    nums: dict[str, Any] = {"models": {t: sum(k == t for k in task) for t in keep},
                            "trained_models": {t: len(v) for t, v in keep.items()},
                            "uniform_distance": uniform_distance,
                            "input_dependence_floor": INPUT_DEPENDENCE_FLOOR}
    if any(len(v) < needed(MIN_SEEDS) for v in keep.values()):
        return Decision("T4", "inconclusive", RULES["T4"].text,
                        {**nums, "too few": "fewer than 5 trained models on a task"})
    rev, ctl = keep["reversal"], keep["control"]
    far = stats.rate_interval([far_share[i] for i in rev])
    out = stats.mean_interval([reach_change[i] for i in rev])
    near = stats.mean_interval([reach_change[i] for i in ctl])
    dep = stats.rate_interval([input_dependence[i] for i in rev])
    nums.update(reach_change_reversal=out.as_dict(), reach_change_control=near.as_dict(),
                far_share=far.as_dict(),
                input_dependence=dep.as_dict())
    supported = out.low > 0 and near.high < 0 and dep.low > INPUT_DEPENDENCE_FLOOR
    refuted = out.high < 0 or far.high < 0.2 or dep.high < FIXED_PATTERN
    return _decide("T4", supported, refuted, nums)
