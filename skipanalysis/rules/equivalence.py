"""Rules for notebook 03 (equivalence): the identity checks E1-E4 and the empirical rule E5."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from .. import stats
from .core import RULES, Decision, _decide, _unconverged, identity, rule

__all__ = ["e1", "e2", "e3", "e4", "e5"]

FLOAT64_TOL = 1e-10  # float64 rounding is about 1e-16 per operation: an identity holds far inside this


def e1(merge: Mapping[str, float]) -> Decision:
    """E1 from ``equivalence.merge_check``: the residual merge is ``x + F(x)`` and the dense merge ``[x, F1..FL]``."""
    ok = (merge["residual_add_max_dev"] < 1e-12 and merge["dense_prefix_max_dev"] == 0
          and merge["dense_out_channels"] == merge["dense_expected_channels"])
    return identity("E1", bool(ok), "identity: a residual block's output minus its branch equals the input to "
                    "within 1e-12 (float64), and a dense block's output starts with its input unchanged and is "
                    "k0 + Lk channels wide; failed otherwise", dict(merge))


def e2(rel_errs: Sequence[float]) -> Decision:
    """E2 from the relative errors of conv(concatenation) against the sum of per-piece convolutions."""
    worst = max(rel_errs)
    return identity("E2", worst < FLOAT64_TOL, f"identity: over every random shape, the largest error relative to "
                    f"the output's magnitude is below {FLOAT64_TOL:g} (float64); failed otherwise",
                    {"max_rel_err": worst, "trials": len(rel_errs)})


def e3(tied_err: float, residuals: Sequence[float]) -> Decision:
    """E3 from the tied dense layer's deviation from a ResNet layer and the best tied fit's relative residual for
    m = 1, 2, ... inputs (index 0 is m = 1)."""
    ok = tied_err < FLOAT64_TOL and residuals[0] < 1e-8 and all(r > 0.1 for r in residuals[1:])
    return identity("E3", bool(ok), f"identity: the tied-weight dense layer equals the ResNet-style layer to within "
                    f"{FLOAT64_TOL:g}, one input is fitted exactly (residual < 1e-8), and for every m >= 2 the best "
                    "tied fit to a random dense layer leaves a relative residual above 0.1; failed otherwise",
                    {"tied_max_abs_err": tied_err, "residual_m2": residuals[1] if len(residuals) > 1 else None})


def e4(counted: Sequence[int], formula: Sequence[int], new_maps: Sequence[int], growth: Sequence[int],
       params: Sequence[int], params_formula: Sequence[int]) -> Decision:
    """E4 from a connection census: per block size the counted connections and L(L+1)/2; per layer the maps it
    adds, its growth rate, its parameters and the hand formula's."""
    ok = list(counted) == list(formula) and list(new_maps) == list(growth) and list(params) == list(params_formula)
    return identity("E4", ok, "exact count: the counted connections equal L(L+1)/2 for every block size L, every "
                    "layer adds exactly k maps, and every layer's parameters equal the hand formula; failed "
                    "otherwise", {"blocks": len(counted), "layers": len(new_maps)})


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
