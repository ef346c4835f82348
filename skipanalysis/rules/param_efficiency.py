"""Rules for notebook 08 (accuracy per parameter): A1-A3."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .. import stats
from .core import RULES, Decision, _decide, _unconverged, rule

__all__ = ["a1", "a2", "a3", "cost_class"]

# "about a third of the parameters": 1/3 within 20% either way (0.267-0.400)
THIRD = (0.8 / 3, 1.2 / 3)
# A1, A2: the control ResNet has 2/3 to 1.5 times the DenseNet's parameters
MATCHED_CONTROL = (2 / 3, 1.5)
# a hybrid with at most 10% more parameters than its base counts as cost-matched
MATCHED_COST = 1.10


def _bounded_paired(a: Sequence[float], b: Sequence[float],
                    bounds: tuple[float, float]) -> stats.Interval:
    """95% paired t interval over seeds of ``mean(a - b)``, kept inside ``bounds``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal lengths, got {a.shape} and {b.shape}")
    iv = stats.mean_interval(a - b, bounds)
    method = (f"paired t over seeds, within [{bounds[0]:g}, {bounds[1]:g}]" if iv.n > 1
              else iv.method)
    return stats.Interval(iv.estimate, iv.low, iv.high, iv.n, method)


def _control_note(control_ratio: float) -> str | None:
    lo, hi = MATCHED_CONTROL
    if lo <= control_ratio <= hi:
        return None
    return (
        f"control has {control_ratio:.2f}x the DenseNet's parameters, outside {lo:.2f}-{hi:.2f}: "
        "not matched")


@rule("A1", """Paired over seeds (test error, same data and seed), the DenseNet against two ResNets:
the larger one (the claim's comparison) and a parameter-matched control (2/3 to 1.5 times the
DenseNet's parameters). Supported if the DenseNet has about a third of the larger ResNet's
parameters (1/3 within 20%: 0.267-0.400), is non-inferior to it (one-sided 97.5% paired t bound of
DenseNet minus ResNet error below the margin fixed before the run) and is clearly better than the
matched control (95% paired t interval of control minus DenseNet error above 0): the parameters
saved are saved by the dense pattern, not by the task needing few. Refuted if the DenseNet is shown
worse than the larger ResNet by more than the margin (the one-sided lower bound above it), or the
matched control is clearly better than the DenseNet (that interval below 0). Inconclusive otherwise
(e.g. the control does as well: a ResNet of the same size matches too), when a run did not converge,
or when the pair or the control does not have the parameter ratio the claim is about.""",
      per_seed=("resnet_err", "densenet_err", "control_err"))
def a1(resnet_err: Sequence[float], densenet_err: Sequence[float], control_err: Sequence[float],
       param_ratio: float,
       control_ratio: float, margin: float, converged: Iterable[bool] | None = None) -> Decision:
    """A1 from per-seed test errors (seed ``i`` at index ``i``) of the larger ResNet, the DenseNet
    and the parameter-matched control ResNet; ``param_ratio`` is DenseNet / larger ResNet
    parameters, ``control_ratio`` control / DenseNet parameters."""
    ni = stats.noninferiority(densenet_err, resnet_err, margin)
    ctrl = _bounded_paired(control_err, densenet_err, (-1.0, 1.0))
    nums = {"param_ratio": round(float(param_ratio), 4),
            "control_ratio": round(float(control_ratio), 4),
            "noninferiority_densenet_vs_resnet": ni.as_dict(),
            "control_minus_densenet_err": ctrl.as_dict(),
            "resnet_test_err": stats.rate_interval(resnet_err).as_dict(),
            "densenet_test_err": stats.rate_interval(densenet_err).as_dict(),
            "control_test_err": stats.rate_interval(control_err).as_dict()}
    if (d := _unconverged("A1", converged, nums)) is not None:
        return d
    lo, hi = THIRD
    if not lo <= param_ratio <= hi:
        return Decision("A1", "inconclusive", RULES["A1"].text,
                        {**nums,
                         "pair": f"parameter ratio {param_ratio:.2f} is outside {lo:.3f}-{hi:.3f}"})
    if (note := _control_note(control_ratio)) is not None:
        return Decision("A1", "inconclusive", RULES["A1"].text, {**nums, "control": note})
    supported = ni.decision == "within" and ctrl.low > 0
    refuted = ni.decision == "outside" or ctrl.high < 0
    if ni.decision == "within" and not supported and not refuted:
        nums["control"] = (
            "the matched ResNet is not clearly worse: a ResNet of the DenseNet's size may do as "
            "well")
    return _decide("A1", supported, refuted, nums)


@rule("A2", """At the scarcest training-set size, the overfitting gap of each run is test error
minus training error (training accuracy minus test accuracy). Paired over seeds (every net sees the
same subset and seed): supported if the 95% paired t interval of ResNet gap minus DenseNet gap lies
above 0, the same interval against the parameter-matched control ResNet lies above 0 too (a smaller
gap that a ResNet of the DenseNet's size shares is a size effect, not the dense pattern), and the
DenseNet's test error is not clearly higher than the ResNet's (the 95% paired interval of ResNet
minus DenseNet test error not entirely below 0: a smaller gap bought by fitting less is not less
overfitting). Refuted if the gap interval against the ResNet lies below 0 (the DenseNet overfits
more). Inconclusive otherwise or when a run did not converge.""",
      per_seed=("resnet_train_err", "resnet_test_err", "densenet_train_err", "densenet_test_err",
                "control_train_err", "control_test_err"))
def a2(resnet_train_err: Sequence[float], resnet_test_err: Sequence[float],
       densenet_train_err: Sequence[float],
       densenet_test_err: Sequence[float], control_train_err: Sequence[float],
       control_test_err: Sequence[float],
       converged: Iterable[bool] | None = None) -> Decision:
    """A2 from per-seed training and test errors of the ResNet, the DenseNet and the matched control
    at the scarcest size (seed ``i`` at index ``i``)."""
    gap_r = np.subtract(resnet_test_err, resnet_train_err)
    gap_d = np.subtract(densenet_test_err, densenet_train_err)
    gap_c = np.subtract(control_test_err, control_train_err)
    less = _bounded_paired(gap_r, gap_d, (-2.0, 2.0))
    less_ctrl = _bounded_paired(gap_c, gap_d, (-2.0, 2.0))
    test = _bounded_paired(resnet_test_err, densenet_test_err, (-1.0, 1.0))

    nums = {"resnet_minus_densenet_gap": less.as_dict(),
            "control_minus_densenet_gap": less_ctrl.as_dict(),
            "resnet_minus_densenet_test_err": test.as_dict(),
            "resnet_gap": stats.mean_interval(gap_r, (-1.0, 1.0)).as_dict(),
            "densenet_gap": stats.mean_interval(gap_d, (-1.0, 1.0)).as_dict(),
            "control_gap": stats.mean_interval(gap_c, (-1.0, 1.0)).as_dict(),
            "resnet_train_err": stats.rate_interval(resnet_train_err).as_dict(),
            "densenet_train_err": stats.rate_interval(densenet_train_err).as_dict(),
            "control_train_err": stats.rate_interval(control_train_err).as_dict()}
    if (d := _unconverged("A2", converged, nums)) is not None:
        return d
    if less.low > 0 and test.high < 0:
        return Decision("A2", "inconclusive", RULES["A2"].text,
                        {**nums,
                         "densenet": "smaller gap but clearly higher test error (fits less)"})
    if less.low > 0 and not less_ctrl.low > 0:
        nums["control"] = (
            "the matched ResNet's gap is not clearly larger: a size effect, not the dense pattern")
    return _decide("A2", less.low > 0 and less_ctrl.low > 0, less.high < 0, nums)


COSTS = ("params", "flops", "time")  # A3's cost axes: parameters, forward FLOPs, training-step time


def cost_class(ratio: float) -> str:
    """A hybrid's cost on one axis against its base's: ``cheaper`` below 1/1.1, ``costlier`` above
    1.1, else ``matched`` (within ``MATCHED_COST``)."""
    if not np.isfinite(ratio) or ratio <= 0:
        raise ValueError(f"cost ratio {ratio!r}: expected a finite number > 0")
    return ("cheaper" if ratio < 1 / MATCHED_COST else "costlier" if ratio > MATCHED_COST
            else "matched")


def hybrid_outcome(hybrid_err: Sequence[float], base_err: Sequence[float],
                   costs: Mapping[str, float], margin: float
                   ) -> dict:
    """Does a hybrid improve on its base's accuracy-cost trade-off? Error paired over seeds; costs
    as ratios hybrid / base on each axis of ``COSTS`` (``cost_class``).

    The error is ``lower`` (95% paired t interval of base minus hybrid above 0), ``non-inferior``
    (one-sided 97.5% bound of hybrid minus base below ``margin``), ``worse`` (its lower bound above
    ``margin``: worse by more than the margin), ``higher`` (that interval below 0; possibly within
    the margin), or ``undecided``. Outcome, a Pareto comparison of the two points: ``improves`` when
    no cost is higher and the error is lower, or non-inferior at a lower cost on some axis (the
    hybrid dominates); ``worse`` when the error is worse by more than the margin whatever the cost,
    or when no cost is lower and the error is higher or not lower at a higher cost (the base
    dominates); ``trade-off`` when one cost is lower and another higher; else ``undecided``.
    """
    missing = [k for k in COSTS if k not in costs]
    if missing:
        raise ValueError(
            f"costs {dict(costs)!r}: missing {missing}; expected ratios for {list(COSTS)}")
    ni = stats.noninferiority(hybrid_err, base_err, margin)
    gain = _bounded_paired(base_err, hybrid_err, (-1.0, 1.0))
    worse, lower, higher, noninf = (ni.decision == "outside", gain.low > 0, gain.high < 0,
                                    ni.decision == "within")
    error = ("worse" if worse else "lower" if lower else "higher, within the margin" if higher
             and noninf else
             "higher" if higher else "non-inferior" if noninf else "undecided")
    classes = {k: cost_class(float(costs[k])) for k in COSTS}
    cheaper, costlier = "cheaper" in classes.values(), "costlier" in classes.values()
    if worse or (not cheaper and (higher or (costlier and not lower))):
        outcome = "worse"
    elif cheaper and costlier:
        outcome = "trade-off"
    elif not costlier and (lower or (noninf and cheaper)):
        outcome = "improves"
    else:
        outcome = "undecided"
    return {"ratios": {k: round(float(costs[k]), 4) for k in COSTS}, "costs": classes,
            "error": error,
            "test": ni.as_dict(), "base_minus_hybrid_err": gain.as_dict(), "outcome": outcome}


@rule("A3", """Each hybrid against its base: test error paired over seeds (same data and seed), and
three costs as ratios hybrid / base: parameters, forward FLOPs and training-step time on this device
(each cheaper below 1/1.1, costlier above 1.1, else matched). The error is lower if the 95% paired t
interval of base minus hybrid lies above 0, non-inferior if the one-sided 97.5% bound of hybrid
minus base lies below the margin fixed before the run, worse if its lower bound lies above the
margin. A hybrid improves the trade-off when it dominates its base: no cost higher and the error
lower, or non-inferior at a lower cost on some axis. It is worse when its error is worse by more
than the margin (whatever it saves), or when nothing is cheaper and the error is higher, or not
lower at a higher cost. One cost lower and another higher is a trade-off, which decides nothing.
Supported if every hybrid improves; refuted if none improves and at least one is worse; inconclusive
otherwise or when a run did not converge.""",
      per_seed=("hybrids",))
def a3(hybrids: Mapping[str, Mapping], margin: float,
       converged: Iterable[bool] | None = None) -> Decision:
    """A3 from ``{hybrid name: {"hybrid_err": [...], "base_err": [...], "costs": {"params", "flops",
    "time"}}}`` (costs as ratios hybrid / base)."""
    if not hybrids:
        raise ValueError("A3 needs at least one hybrid")
    out = {h: hybrid_outcome(v["hybrid_err"], v["base_err"], v["costs"], margin) for h,
           v in hybrids.items()}
    nums = {"hybrids": out, "margin": margin}
    if (d := _unconverged("A3", converged, nums)) is not None:
        return d
    outcomes = [o["outcome"] for o in out.values()]
    return _decide("A3", all(o == "improves" for o in outcomes),
                   "improves" not in outcomes and "worse" in outcomes, nums)
