"""Rules for notebook 03 (equivalence): E5 (E1-E4 are identities, checked with core.identity)."""

from __future__ import annotations

from typing import Iterable, Sequence

from .. import stats
from .core import RULES, Decision, _decide, _unconverged, rule

__all__ = ["e5"]


@rule("E5", """Held-out R^2 of decoding each earlier output (the stem's maps and each block's or layer's own
output) linearly, pixel by pixel, from the last layer's input; per trained net (one per seed) the mean and the minimum
over the earlier outputs. An output counts as recoverable when its R^2 is within the margin (fixed before the run) of
1. The DenseNet's outputs must be recoverable in every seed (minimum R^2 >= 1 - margin), else the decoder failed on a
case where the output is part of the input and the verdict is inconclusive. Then, paired over seeds, on the
unexplained variance 1 - mean R^2 (ResNet minus DenseNet, a non-inferiority test, 90% paired t interval): supported
if the lower bound exceeds the margin (the ResNet's outputs are not recoverable the way the DenseNet's are); refuted if
the upper bound is below the margin (they are recoverable within the margin too); inconclusive otherwise, or when a
run did not converge.""", per_seed=("dense_mean_r2", "residual_mean_r2", "dense_min_r2"))
def e5(dense_mean_r2: Sequence[float], residual_mean_r2: Sequence[float], dense_min_r2: Sequence[float],
       margin: float, converged: Iterable[bool] | None = None) -> Decision:
    dense_loss = [1 - v for v in dense_mean_r2]
    residual_loss = [1 - v for v in residual_mean_r2]
    test = stats.noninferiority(residual_loss, dense_loss, margin)
    nums = {"unexplained_residual_minus_dense": test.as_dict(),
            "dense_mean_r2": stats.mean_interval(dense_mean_r2, (-float("inf"), 1.0)).as_dict(),
            "residual_mean_r2": stats.mean_interval(residual_mean_r2, (-float("inf"), 1.0)).as_dict(),
            "dense_min_r2": round(min(dense_min_r2), 6) if len(dense_min_r2) else float("nan"),
            "seeds": len(dense_mean_r2)}
    if (d := _unconverged("E5", converged, nums)) is not None:
        return d
    if not len(dense_min_r2) or min(dense_min_r2) < 1 - margin:
        return Decision("E5", "inconclusive", RULES["E5"].text,
                        {**nums, "decoder check": "a DenseNet output was not recovered from an input that contains it"})
    return _decide("E5", test.decision == "outside", test.decision == "within", nums)
