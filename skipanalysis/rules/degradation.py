"""Rules for notebook 01 (degradation): D1-D5."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from .. import stats
from .core import RULES, Decision, _decide, _unconverged, rule

__all__ = ["d1", "d2", "d3", "d4", "d5"]


def _learned(errors: Sequence[float], chance: float) -> bool:
    """A net that learned: mean error at most 90% of chance error (1 - 1/classes)."""
    v = [e for e in errors if math.isfinite(e)]
    return bool(v) and sum(v) / len(v) <= 0.9 * chance


@rule("D1", """Paired over seeds (final training error, 95% paired t intervals): the deep plain net
against the shallow plain net at the same budget, and the deep plain net trained again for twice the
budget against the shallow plain net at the budget. Supported if both intervals lie above 0 and the
gap at twice the budget is not shown smaller than the margin: the deeper plain net ends worse, and
twice the steps of the same recipe do not close the gap (so it is not merely a slower start).
Refuted if the deep plain net is shown better at the same budget (interval below 0), or if the gap
is gone at twice the budget (one-sided 97.5% bound of the difference below the margin fixed before
the run). Inconclusive otherwise; when the runs at twice the budget are missing; when the shallow
plain net or a residual net of any depth under the same recipe did not converge (then the recipe,
not depth, may be at fault; the deep plain net's failure to fit is the phenomenon, so its
convergence is reported, not required); or when the deep plain net does not leave chance even at
twice the budget (mean error above 90% of the chance error): a net that does not train at all is not
the degradation He et al. describe (one that is near chance at the budget but leaves it with more
steps trains, slowly, and is read).""",
      per_seed=("plain_shallow", "plain_deep", "plain_deep_longer"))
def d1(plain_shallow: Sequence[float], plain_deep: Sequence[float],
       plain_deep_longer: Sequence[float] | None = None,
       margin: float = 0.02, chance: float = 0.9,
       converged: Iterable[bool] | None = None) -> Decision:
    diff = stats.paired_difference(plain_deep, plain_shallow)
    nums = {"deep_minus_shallow": diff.as_dict(),
            "plain_shallow": stats.rate_interval(plain_shallow).as_dict(),
            "plain_deep": stats.rate_interval(plain_deep).as_dict(), "margin": margin}
    if plain_deep_longer is None or not len(plain_deep_longer):
        return Decision("D1", "inconclusive", RULES["D1"].text,
                        {**nums, "twice the budget": "not run"})
    longer = stats.paired_difference(plain_deep_longer, plain_shallow)
    gone = stats.noninferiority(plain_deep_longer, plain_shallow, margin)
    nums.update(longer_minus_shallow=longer.as_dict(), gap_gone_at_twice=gone.as_dict(),
                plain_deep_longer=stats.rate_interval(plain_deep_longer).as_dict())
    if (d := _unconverged("D1", converged, nums)) is not None:
        return d
    if not _learned(plain_deep_longer, chance):
        return Decision("D1", "inconclusive", RULES["D1"].text,
                        {**nums, "deep plain net": "did not leave chance"})
    gap_gone = gone.decision == "within"
    return _decide("D1", diff.low > 0 and longer.low > 0 and not gap_gone, diff.high < 0
                   or gap_gone, nums)


@rule("D2", """Supported if (a) the deep residual net is non-inferior to the shallow residual net in
final training error (one-sided 97.5% paired t bound of deep minus shallow below the margin fixed
before the run) and (b) it is clearly better than the deep plain net (95% paired interval of plain
minus residual above 0). Refuted if the deep residual net is shown worse than the shallow one by
more than the margin, or the deep plain net is clearly better than the deep residual one.
Inconclusive otherwise, or when a residual net (of any depth) did not converge; the deep plain
net's failure to fit is the phenomenon D1 shows persists, so its convergence is reported, not
required.""",
      per_seed=("residual_shallow", "residual_deep", "plain_deep"))
def d2(residual_shallow: Sequence[float], residual_deep: Sequence[float],
       plain_deep: Sequence[float],
       margin: float, converged: Iterable[bool] | None = None) -> Decision:
    ni = stats.noninferiority(residual_deep, residual_shallow, margin)
    vs_plain = stats.paired_difference(plain_deep, residual_deep)
    nums = {"noninferiority_deep_vs_shallow": ni.as_dict(),
            "plain_minus_residual_deep": vs_plain.as_dict(),
            "residual_shallow": stats.rate_interval(residual_shallow).as_dict(),
            "residual_deep": stats.rate_interval(residual_deep).as_dict()}
    if (d := _unconverged("D2", converged, nums)) is not None:
        return d
    return _decide("D2", ni.decision == "within" and vs_plain.low > 0,
                   ni.decision == "outside" or vs_plain.high < 0, nums)


@rule("D3", """Replicated over seeds: each seed's trained shallow plain net is deepened with
identity blocks. The constructed nets must first reproduce their shallow nets (training error within
0.5 points at the start, every seed; otherwise the construction is broken and the verdict
inconclusive). Then, after further training with the same recipe, each is paired with the deep plain
net of the same seed trained from scratch for the same total budget (the shallow net's epochs plus
the further ones): 95% paired t interval of scratch minus constructed final training error.
Supported if it lies above 0 (from scratch the deep net does not find a solution that good); refuted
if it lies below 0; inconclusive otherwise, or when a constructed run did not converge (a
from-scratch deep plain net that does not fit is the phenomenon itself, so its convergence is
reported, not required).""",
      per_seed=("shallow_errs", "start_errs", "after_errs", "scratch_errs"))
def d3(shallow_errs: Sequence[float], start_errs: Sequence[float], after_errs: Sequence[float],
       scratch_errs: Sequence[float], converged: Iterable[bool] | None = None) -> Decision:
    gap = stats.paired_difference(scratch_errs, after_errs)
    worst = max((abs(a - b) for a, b in zip(start_errs, shallow_errs)), default=math.nan)
    nums = {"scratch_minus_constructed": gap.as_dict(),
            "shallow": stats.rate_interval(shallow_errs).as_dict(),
            "constructed_start": stats.rate_interval(start_errs).as_dict(),
            "constructed_after": stats.rate_interval(after_errs).as_dict(),
            "scratch": stats.rate_interval(scratch_errs).as_dict(), "largest_start_gap": worst}
    if not worst <= 0.005:
        return Decision("D3", "inconclusive", RULES["D3"].text,
                        {**nums, "construction": "does not reproduce"})
    if (d := _unconverged("D3", converged, nums)) is not None:
        return d
    return _decide("D3", gap.low > 0, gap.high < 0, nums)


# median output-input correlation: below 0.5 far from the identity, above 0.9 near it
D4_FAR, D4_NEAR = 0.5, 0.9


@rule("D4", """Median over blocks of the correlation (centred cosine, per image, averaged) between a
block's output and its input through the shortcut: 1 is the identity's direction. It is
scale-invariant, so batch norm's rescaling cannot move it (the old relative distance sat near 1 by
construction). Against the same net at initialisation (same seed): supported if the trained deep
plain net's median lies below 0.5 (its blocks stay far from doing nothing) and training did not
carry it more than half of the way from its initial value to 1. Refuted if the trained median lies
above 0.9 (the layers learned near-identity maps) or training carried it more than half of the way
to 1. Inconclusive otherwise. The same-depth residual net's trained median (whole block, shortcut
included) is reported as the reference of a net that can fall back to the identity; one median per
net state, no replicate.""")
def d4(plain_trained: float, plain_init: float, residual_trained: float | None = None,
       plain_distance: float | None = None) -> Decision:
    half_way = plain_init + (1 - plain_init) / 2
    nums = {"plain_trained": plain_trained, "plain_init": plain_init,
            "residual_trained": residual_trained,
            "half_way_to_identity": half_way, "plain_relative_distance": plain_distance,
            "far_below": D4_FAR, "near_above": D4_NEAR}
    return _decide("D4", plain_trained < D4_FAR and plain_trained <= half_way,
                   plain_trained > D4_NEAR or plain_trained > half_way, nums)


@rule("D5", """Paired over the seeds the arms share (final training error at the deep depth):
supported if the highway net is clearly better than the plain net (95% paired interval of plain
minus highway above 0), the residual net is non-inferior to the highway net (one-sided 97.5% bound
of residual minus highway below the margin) and the highway net does not still degrade (below).
Refuted if the plain net is clearly better than the highway net, or the residual net is shown worse
than the highway net by more than the margin, or the highway net still degrades: trained again for
twice the budget, its error stays above the shallow plain net's at the budget by more than the
margin (95% paired interval above the margin), where the residual net of the same depth fits at the
budget, as D1 asks of the plain net. Inconclusive otherwise; when a residual net did not converge;
or when a highway net did not converge and no run at twice the budget says whether it is slow or
degraded (the deep plain net need not converge: its failure to fit is the phenomenon).""",
      per_seed=("plain_deep", "highway_deep", "residual_deep", "highway_longer", "plain_shallow"))
def d5(plain_deep: Sequence[float], highway_deep: Sequence[float], residual_deep: Sequence[float],
       margin: float,
       converged: Iterable[bool] | None = None, highway_converged: Iterable[bool] | None = None,
       highway_longer: Sequence[float] | None = None,
       plain_shallow: Sequence[float] | None = None) -> Decision:
    n = min(len(plain_deep), len(highway_deep), len(residual_deep))
    p, h, r = list(plain_deep)[:n], list(highway_deep)[:n], list(residual_deep)[:n]
    fixes = stats.paired_difference(p, h)
    ni = stats.noninferiority(r, h, margin)
    nums = {"plain_minus_highway": fixes.as_dict(),
            "noninferiority_residual_vs_highway": ni.as_dict(),
            "paired_seeds": n, "margin": margin}
    degrades = False
    if highway_longer is not None and plain_shallow is not None and len(highway_longer):
        m = min(len(highway_longer), len(plain_shallow))
        still = stats.paired_difference(list(highway_longer)[:m], list(plain_shallow)[:m])
        nums.update(highway_longer_minus_plain_shallow=still.as_dict(),
                    highway_longer=stats.rate_interval(highway_longer).as_dict())
        degrades = still.low > margin
    if (d := _unconverged("D5", converged, nums)) is not None:
        return d
    flags = list(highway_converged) if highway_converged is not None else []
    if flags and not all(flags) and "highway_longer_minus_plain_shallow" not in nums:
        return Decision("D5", "inconclusive", RULES["D5"].text,
                        {**nums,
                         "not converged": f"{sum(not f for f in flags)} of {len(flags)} highway "
                                          "runs, none at twice the budget"})
    return _decide("D5", fixes.low > 0 and ni.decision == "within" and not degrades,
                   fixes.high < 0 or ni.decision == "outside" or degrades, nums)


