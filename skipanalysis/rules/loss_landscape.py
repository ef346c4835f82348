"""Rules for notebook 07 (loss landscape): L1."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .. import stats
from .core import RULES, Decision, _decide, _unconverged, rule

__all__ = ["l1"]


def _paired_gap(a: Sequence[float], b: Sequence[float],
                bounds: tuple[float, float] = (-1.0, 1.0)) -> stats.Interval:
    """Mean of the per-seed differences ``a[i] - b[i]`` with its 95% t interval over seeds, kept
    inside ``bounds`` (a difference of two shares lies in [-1, 1])."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal lengths, got {a.shape} and {b.shape}")
    iv = stats.mean_interval(a - b, bounds)
    return stats.Interval(iv.estimate, iv.low, iv.high, iv.n,
                          f"paired t over seeds, within [{bounds[0]:g}, "
                          f"{bounds[1]:g}]" if iv.n > 1 else iv.method)


def _l1_side(ps: Sequence[float], rs: Sequence[float], pd_: Sequence[float],
             rd: Sequence[float]) -> str:
    """L1's decision from the intervals alone: supported, refuted or inconclusive."""
    deep = _paired_gap(pd_, rd)
    growth = _paired_gap(np.subtract(pd_, rd), np.subtract(ps, rs), (-2.0, 2.0))
    if deep.low > 0 and growth.low > 0:
        return "supported"
    return "refuted" if deep.high < 0 or growth.high < 0 else "inconclusive"


def _learned(errors: Sequence[float], chance: float) -> bool:
    """A net that learned: mean error at most 90% of chance error (as for D1)."""
    v = [e for e in errors if math.isfinite(e)]
    return bool(v) and sum(v) / len(v) <= 0.9 * chance


@rule("L1", """Per seed, the non-convex share of each trained net's 2-D loss surface (share of
interior grid points whose finite-difference Hessian has a clearly negative eigenvalue), averaged
over that net's random direction pairs; plain and residual nets of one seed share initialisation
seed and data order. Gap = plain minus residual share at a depth; growth = deep gap minus shallow
gap. Supported if the 95% paired t interval over seeds of the deep gap lies above 0 and that of the
growth lies above 0. Refuted if the deep gap's interval lies below 0 (residual surfaces rougher) or
the growth's lies below 0 (the gap shrinks with depth). Inconclusive otherwise, when a run did not
converge, when a net did not leave chance (mean training error above 90% of the chance error: its
surface is not that of a trained minimum), or when no surface has a non-convex point (the measure
cannot tell the nets apart).""",
per_seed=("plain_shallow", "residual_shallow", "plain_deep", "residual_deep", "train_err"))
def l1(plain_shallow: Sequence[float], residual_shallow: Sequence[float],
       plain_deep: Sequence[float],
       residual_deep: Sequence[float], converged: Iterable[bool] | None = None,
       train_err: Mapping[str, Sequence[float]] | None = None, chance: float = 0.9) -> Decision:
    """L1 from per-seed non-convex shares (seed ``i`` at index ``i`` of every list).

    Args:
        plain_shallow, residual_shallow, plain_deep, residual_deep: per-seed non-convex shares in
        [0, 1]. converged: one flag per training run. train_err: final training errors per net name
        (e.g. ``{"plain-56": [...]}``), checked against ``chance``
            (the error of guessing, 1 - 1/classes).
    """
    n = len(plain_shallow)
    if not all(len(v) == n for v in (residual_shallow, plain_deep, residual_deep)):
        raise ValueError("L1 needs one share per seed in every arm (equal lengths)")
    gap_shallow = _paired_gap(plain_shallow, residual_shallow)
    gap_deep = _paired_gap(plain_deep, residual_deep)
    growth = _paired_gap(np.subtract(plain_deep, residual_deep),
                         np.subtract(plain_shallow, residual_shallow),
                        (-2.0, 2.0))
    nums = {"gap_deep": gap_deep.as_dict(), "gap_shallow": gap_shallow.as_dict(),
            "growth": growth.as_dict(),
            **{name: stats.rate_interval(v).as_dict() for name, v in
               (("plain_shallow", plain_shallow), ("residual_shallow", residual_shallow),
                ("plain_deep", plain_deep), ("residual_deep", residual_deep))}, "seeds": n}
    if (d := _unconverged("L1", converged, nums)) is not None:
        return d
    stuck = [name for name, errs in (train_err or {}).items() if not _learned(errs, chance)]
    if stuck:
        return Decision("L1", "inconclusive", RULES["L1"].text,
                        {**nums, "did not leave chance": stuck})
    if not any(np.nan_to_num(
        np.concatenate([plain_shallow, residual_shallow, plain_deep, residual_deep])) > 0):
        return Decision("L1", "inconclusive", RULES["L1"].text,
                        {**nums, "surfaces": "no non-convex point in any"})
    side = _l1_side(plain_shallow, residual_shallow, plain_deep, residual_deep)
    return _decide("L1", side == "supported", side == "refuted", nums)
