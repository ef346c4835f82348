"""Rules for notebook 03 (equivalence): the identity checks E1-E4 and the empirical rule E5."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .. import stats
from .core import RULES, Decision, _decide, check, identity, rule

__all__ = ["e1", "e2", "e3", "e4", "e5"]

# float64 rounding is about 1e-16 per operation: an identity holds far inside this
FLOAT64_TOL = 1e-10


@check("E1")
def e1(merge: Mapping[str, float]) -> Decision:
    """E1 from ``equivalence.merge_check``: the residual merge is ``x + F(x)`` and the dense merge
    ``[x, F1..FL]``."""
    ok = (merge["residual_add_max_dev"] < 1e-12 and merge["dense_prefix_max_dev"] == 0
          and merge["dense_out_channels"] == merge["dense_expected_channels"])
    return identity("E1", bool(ok), "identity: a residual block's output minus its branch equals "
                                    "the input to within 1e-12 (float64), and a dense block's "
                                    "output starts with its input unchanged and is k0 + Lk "
                                    "channels wide; failed otherwise", dict(merge))


@check("E2")
def e2(rel_errs: Sequence[float]) -> Decision:
    """E2 from the relative errors of conv(concatenation) against the sum of per-piece
    convolutions."""
    worst = max(rel_errs)
    return identity("E2", worst < FLOAT64_TOL,
                    f"identity: over every random shape, the largest error relative to "
                    f"the output's magnitude is below {FLOAT64_TOL:g} (float64); failed otherwise",
                    {"max_rel_err": worst, "trials": len(rel_errs)})


@check("E3")
def e3(tied_err: float, residuals: Sequence[float]) -> Decision:
    """E3 from the tied dense layer's deviation from a ResNet layer and the best tied fit's relative
    residual for m = 1, 2, ... inputs (index 0 is m = 1)."""
    ok = tied_err < FLOAT64_TOL and residuals[0] < 1e-8 and all(r > 0.1 for r in residuals[1:])
    return identity("E3", bool(ok), "identity: the tied-weight dense layer equals the "
                                    f"ResNet-style layer to within {FLOAT64_TOL:g}, one input is "
                                    "fitted exactly (residual < 1e-8), and for every m >= 2 the "
                                    "best tied fit to a random dense layer leaves a relative "
                                    "residual above 0.1; failed otherwise",
                    {"tied_max_abs_err": tied_err, "residual_m2": residuals[1] if len(residuals) > 1
                     else None})


@check("E4")
def e4(counted: Sequence[int], formula: Sequence[int], new_maps: Sequence[int],
       growth: Sequence[int],
       params: Sequence[int], params_formula: Sequence[int]) -> Decision:
    """E4 from a connection census: per block size the counted connections and L(L+1)/2; per layer
    the maps it adds, its growth rate, its parameters and the hand formula's."""
    ok = list(counted) == list(formula) and list(new_maps) == list(growth) and list(params) == list(
        params_formula)
    return identity("E4", ok, "exact count: the counted connections equal L(L+1)/2 for every "
                              "block size L, every layer adds exactly k maps, and every layer's "
                              "parameters equal the hand formula; failed "
                              "otherwise", {"blocks": len(counted), "layers": len(new_maps)})


@rule("E5", """A structural claim, measured on trained nets and on the same nets at initialisation;
neither state is gated on convergence (training does not create the sum; whether a run fitted is
reported beside the verdict). Held-out R^2 of decoding each earlier output (the stem's maps and each
block's or layer's own output) linearly, pixel by pixel, from the last layer's input; per net (one
per seed and state) the mean and the minimum over the earlier outputs. The DenseNet's outputs must
be recoverable in every seed and state (minimum R^2 >= 1 - margin, the margin fixed before the run),
else the decoder failed where the output is part of the input and the verdict is inconclusive. Then,
per state, paired over seeds, the unexplained variance 1 - mean R^2, ResNet minus DenseNet, against
the margin (one-sided 97.5% paired t bounds). Supported if in both states the lower bound exceeds
the margin (the ResNet's outputs are not recoverable the way the DenseNet's are, by construction and
after training); refuted if in either state the upper bound lies below the margin (the sum can be
unmixed within the margin); inconclusive otherwise.""",
      per_seed=("dense_mean_r2", "residual_mean_r2", "dense_min_r2", "dense_init_r2",
                "residual_init_r2",
                "dense_init_min_r2"))
def e5(dense_mean_r2: Sequence[float], residual_mean_r2: Sequence[float],
       dense_min_r2: Sequence[float],
       margin: float, dense_init_r2: Sequence[float], residual_init_r2: Sequence[float],
       dense_init_min_r2: Sequence[float], converged: Iterable[bool] | None = None) -> Decision:
    states = {"trained": (dense_mean_r2, residual_mean_r2),
              "initialised": (dense_init_r2, residual_init_r2)}
    tests = {k: stats.noninferiority([1 - v for v in r], [1 - v for v in d], margin) for k,
             (d, r) in states.items()}
    mins = list(dense_min_r2) + list(dense_init_min_r2)
    nums = {f"unexplained_residual_minus_dense_{k}": t.as_dict() for k, t in tests.items()}
    nums.update({f"{m}_mean_r2_{k}": stats.mean_interval(v, (-float("inf"), 1.0)).as_dict()
                 for k, pair in states.items() for m, v in zip(("dense", "residual"), pair)})
    nums["dense_min_r2"] = round(min(mins), 6) if mins else float("nan")
    flags = list(converged) if converged is not None else []
    if flags:
        nums["converged (reported, not a gate)"] = f"{sum(flags)} of {len(flags)} runs"
    if not mins or min(mins) < 1 - margin:
        return Decision("E5", "inconclusive", RULES["E5"].text,
                        {**nums,
                         "decoder check": "a DenseNet output was not recovered from an input "
                                          "that contains it"})
    return _decide("E5", all(t.decision == "outside" for t in tests.values()),
                   any(t.decision == "within" for t in tests.values()), nums)
