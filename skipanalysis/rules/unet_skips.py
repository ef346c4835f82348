"""Rules for notebook 06 (U-Net long skips): U1-U3.

All three read held-out scores of U-Nets trained with the same seeds, so every comparison is paired
by seed (seed ``s`` of one variant against seed ``s`` of the other). IoU and shares are rates: their
intervals stay inside [0, 1].

A run has converged when its held-out score has settled: the variant's first seed trained again for
twice the steps gains at most the stated plateau of held-out IoU
(``studies.unet_skips.skip_study``); the training loss of a U-Net keeps falling long after that.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from .. import stats
from .core import RULES, Decision, _decide, _unconverged, rule

__all__ = ["u1", "u2", "u3"]


@rule("U1", """Two measurements on the held-out slices, over seeds. (a) Quality, by two measures:
held-out IoU of the membrane mask and, when given, the ISBI 2012 challenge's foreground-restricted
Rand F-score V_rand of the cells the membranes enclose; each of the net with long skips (concat)
minus the net without them, same seed, 95% paired t interval. (b) Where the added errors lie: per
seed, of the pixels the net without skips gets wrong and the net with skips gets right, the share
lying in the boundary band, against the control: the share of the with-skip net's own errors lying
in the band (errors on thin membranes sit near boundaries whatever the model, so the pixel share
alone is no control); 95% paired t interval of added-error share minus control share. Supported if
(a) lies above 0 on every measure and (b) lies above 0 (the skips' gain is concentrated at
boundaries beyond where any net errs). Refuted if (a) lies below 0 on either measure (the skips do
not help), or (a) lies above 0 on every measure and (b) lies below 0 (the added errors lie at
boundaries less than the with-skip net's own errors do). Inconclusive otherwise, or when a run did
not converge. The share of all pixels in the band is reported.""",
      per_seed=("iou_with", "iou_without", "share_added_near", "share_control_near", "rand_with",
                "rand_without"))
def u1(iou_with: Sequence[float], iou_without: Sequence[float], share_added_near: Sequence[float],
       share_control_near: Sequence[float], share_pixels_near: float,
       converged: Iterable[bool] | None = None, rand_with: Sequence[float] | None = None,
       rand_without: Sequence[float] | None = None) -> Decision:
    drop = stats.paired_difference(iou_with, iou_without)
    share, control = stats.rate_interval(share_added_near), stats.rate_interval(share_control_near)
    excess = stats.paired_difference(share_added_near, share_control_near)
    nums = {"iou_with_minus_without": drop.as_dict(),
            "iou_with": stats.rate_interval(iou_with).as_dict(),
            "iou_without": stats.rate_interval(iou_without).as_dict(),
            "share_of_added_errors_near_boundary": share.as_dict(),
            "share_of_with_skip_errors_near_boundary": control.as_dict(),
            "added_minus_control_share": excess.as_dict(),
            "share_of_pixels_near_boundary": round(float(share_pixels_near), 4)}
    quality = [drop]
    if rand_with is not None and rand_without is not None:
        quality.append(stats.paired_difference(rand_with, rand_without))
        nums["rand_f_with_minus_without"] = quality[-1].as_dict()
    if (d := _unconverged("U1", converged, nums)) is not None:
        return d
    gain, loss = all(q.low > 0 for q in quality), any(q.high < 0 for q in quality)
    return _decide("U1", gain and excess.low > 0, loss or (gain and excess.high < 0), nums)


@rule("U2", """Per seed and per structure class (membrane pixels grouped by local thickness,
thinnest first), the IoU lost by dropping the long skips (concat minus none, same seed). Paired over
seeds: supported if the thinnest class loses more than the thickest (95% paired t interval of
thinnest-class loss minus thickest-class loss above 0); refuted if it lies below 0 (the thickest
structures suffer most); inconclusive otherwise, with fewer than two classes, or when a run did not
converge. The least-squares slope of the loss on the class's rank (one slope per seed, t interval
over seeds) is reported beside it, not used.""", per_seed=("loss_by_class",))
def u2(loss_by_class: Mapping[str, Sequence[float]],
       converged: Iterable[bool] | None = None) -> Decision:
    names = list(loss_by_class)
    nums: dict = {"loss_by_class": {k: stats.mean_interval(v, (-1.0, 1.0)).as_dict() for k, v in
                                    loss_by_class.items()}}
    if len(names) < 2:
        return Decision("U2", "inconclusive", RULES["U2"].text,
                        {**nums, "classes": "fewer than two"})
    thin, thick = names[0], names[-1]
    diff = stats.paired_difference(loss_by_class[thin], loss_by_class[thick])
    nums.update({"thinnest": thin, "thickest": thick, "thinnest_minus_thickest": diff.as_dict()})
    pts = [(i, j, v) for i, k in enumerate(names) for j, v in enumerate(loss_by_class[k])
           if math.isfinite(v)]
    # a seed's classes move together: one slope per seed, t over seeds
    if len({i for i, _, _ in pts}) >= 2:
        xs, seeds, ys = zip(*pts)
        nums["slope_per_class"] = stats.slope_interval(xs, ys, groups=seeds).as_dict()
    if (d := _unconverged("U2", converged, nums)) is not None:
        return d
    return _decide("U2", diff.low > 0, diff.high < 0, nums)


@rule("U3", """Concatenated and added long skips in parameter-matched U-Nets, paired over seeds:
held-out IoU of concat minus add, with an equivalence margin fixed before the run (two one-sided
tests at 0.025 each, the 95% paired t interval). Supported if the interval lies entirely beyond the
margin on one side: a winner by more than the margin (named in the numbers, with the difference).
Refuted if the interval lies inside (-margin, margin): neither merge wins by the margin.
Inconclusive otherwise, or when a run did not converge.""", per_seed=("iou_concat", "iou_add"))
def u3(iou_concat: Sequence[float], iou_add: Sequence[float], margin: float,
       converged: Iterable[bool] | None = None) -> Decision:
    tost = stats.equivalence(iou_concat, iou_add, margin)
    diff = stats.paired_difference(iou_concat, iou_add)
    est = tost.interval.estimate
    nums = {"equivalence_concat_vs_add": tost.as_dict(), "concat_minus_add": diff.as_dict(),
            "iou_concat": stats.rate_interval(iou_concat).as_dict(),
            "iou_add": stats.rate_interval(iou_add).as_dict(),
            "higher_mean": "concat" if est > 0 else "add" if est < 0 else "tie",
            "winner": ("concat" if est > 0 else "add") if tost.decision == "outside"
            else "none by the margin"}
    if (d := _unconverged("U3", converged, nums)) is not None:
        return d
    return _decide("U3", tost.decision == "outside", tost.decision == "within", nums)
