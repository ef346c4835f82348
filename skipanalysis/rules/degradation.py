"""Rules for notebook 01 (degradation): D1-D5."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from .. import stats
from .core import RULES, Decision, _decide, _unconverged, rule

__all__ = ["d1", "d2", "d3", "d4", "d5"]


def _learned(errors: Sequence[float], chance: float) -> bool:
    """A net that learned: mean error at most 90% of chance error (1 - 1/classes)."""
    v = [e for e in errors if math.isfinite(e)]
    return bool(v) and sum(v) / len(v) <= 0.9 * chance


@rule("D1", """Paired over seeds (final training error, deep plain minus shallow plain, 95% paired t interval):
supported if the interval lies above 0, refuted if below 0, else inconclusive. Inconclusive when a run did not
converge or when the deep plain net did not leave chance (mean error above 90% of the chance error): then it does
not train at all, which is not the degradation He et al. describe.""", per_seed=("plain_shallow", "plain_deep"))
def d1(plain_shallow: Sequence[float], plain_deep: Sequence[float], chance: float = 0.9,
       converged: Iterable[bool] | None = None) -> Decision:
    diff = stats.paired_difference(plain_deep, plain_shallow)
    nums = {"deep_minus_shallow": diff.as_dict(), "plain_shallow": stats.rate_interval(plain_shallow).as_dict(),
            "plain_deep": stats.rate_interval(plain_deep).as_dict()}
    if (d := _unconverged("D1", converged, nums)) is not None:
        return d
    if not _learned(plain_deep, chance):
        return Decision("D1", "inconclusive", RULES["D1"].text, {**nums, "deep plain net": "did not leave chance"})
    return _decide("D1", diff.low > 0, diff.high < 0, nums)


@rule("D2", """Supported if (a) the deep residual net is non-inferior to the shallow residual net in final training
error (one-sided 97.5% paired t bound of deep minus shallow below the margin fixed before the run) and (b) it is
clearly better than the deep plain net (95% paired interval of plain minus residual above 0). Refuted if the deep
residual net is shown worse than the shallow one by more than the margin, or the deep plain net is clearly better
than the deep residual one. Inconclusive otherwise, or when a run did not converge.""", per_seed=("residual_shallow", "residual_deep", "plain_deep"))
def d2(residual_shallow: Sequence[float], residual_deep: Sequence[float], plain_deep: Sequence[float],
       margin: float, converged: Iterable[bool] | None = None) -> Decision:
    ni = stats.noninferiority(residual_deep, residual_shallow, margin)
    vs_plain = stats.paired_difference(plain_deep, residual_deep)
    nums = {"noninferiority_deep_vs_shallow": ni.as_dict(), "plain_minus_residual_deep": vs_plain.as_dict(),
            "residual_shallow": stats.rate_interval(residual_shallow).as_dict(),
            "residual_deep": stats.rate_interval(residual_deep).as_dict()}
    if (d := _unconverged("D2", converged, nums)) is not None:
        return d
    return _decide("D2", ni.decision == "within" and vs_plain.low > 0,
                   ni.decision == "outside" or vs_plain.high < 0, nums)


@rule("D3", """The constructed deep plain net must first reproduce the shallow net (training error within 0.5
points of it at the start; otherwise the construction is broken and the verdict inconclusive). Then, after further
training with the same recipe, supported if the from-scratch deep plain nets' 95% interval of final training error
lies entirely above the constructed net's error (training from scratch does not find a solution that good); refuted
if it lies entirely below it; inconclusive otherwise or when a run did not converge.""", per_seed=("scratch_errs",))
def d3(shallow_err: float, constructed_start_err: float, constructed_after_err: float,
       scratch_errs: Sequence[float], converged: Iterable[bool] | None = None) -> Decision:
    scratch = stats.rate_interval(scratch_errs)
    nums = {"shallow_err": shallow_err, "constructed_start_err": constructed_start_err,
            "constructed_after_err": constructed_after_err, "scratch": scratch.as_dict()}
    if abs(constructed_start_err - shallow_err) > 0.005:
        return Decision("D3", "inconclusive", RULES["D3"].text, {**nums, "construction": "does not reproduce"})
    if (d := _unconverged("D3", converged, nums)) is not None:
        return d
    return _decide("D3", scratch.above(constructed_after_err), scratch.below(constructed_after_err), nums)


@rule("D4", """Median over blocks of the relative distance of a block's map to the identity, ||B(h) - h|| / ||h||.
Supported if the trained deep plain net's median is at least 0.5 and training did not bring it within half of its
value at initialisation (trained >= 0.5 x initial): its layers stay far from doing nothing. Refuted if the trained
median is below 0.2 (the layers learned near-identity maps). Inconclusive otherwise.""")
def d4(plain_trained: float, plain_init: float, residual_trained: float | None = None,
       plain_to_zero: float | None = None) -> Decision:
    nums = {"plain_trained": plain_trained, "plain_init": plain_init, "residual_trained": residual_trained,
            "plain_to_zero": plain_to_zero}
    return _decide("D4", plain_trained >= 0.5 and plain_trained >= 0.5 * plain_init, plain_trained < 0.2, nums)


@rule("D5", """Paired over the seeds both arms share (final training error at the deep depth): supported if the
highway net is clearly better than the plain net (95% paired interval of plain minus highway above 0) and the
residual net is non-inferior to the highway net (one-sided 97.5% bound of residual minus highway below the margin).
Refuted if the plain net is clearly better than the highway net, or the residual net is shown worse than the highway
net by more than the margin. Inconclusive otherwise or when a run did not converge.""", per_seed=("plain_deep", "highway_deep", "residual_deep"))
def d5(plain_deep: Sequence[float], highway_deep: Sequence[float], residual_deep: Sequence[float], margin: float,
       converged: Iterable[bool] | None = None) -> Decision:
    n = min(len(plain_deep), len(highway_deep), len(residual_deep))
    p, h, r = list(plain_deep)[:n], list(highway_deep)[:n], list(residual_deep)[:n]
    fixes = stats.paired_difference(p, h)
    ni = stats.noninferiority(r, h, margin)
    nums = {"plain_minus_highway": fixes.as_dict(), "noninferiority_residual_vs_highway": ni.as_dict(),
            "paired_seeds": n}
    if (d := _unconverged("D5", converged, nums)) is not None:
        return d
    return _decide("D5", fixes.low > 0 and ni.decision == "within", fixes.high < 0 or ni.decision == "outside", nums)


