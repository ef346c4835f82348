"""Intervals and tests that a verdict can rest on.

- ``Interval``: an estimate with its 95% interval, the sample size and the method, by name.
- ``mean_interval``: Student's t interval of a mean over seeds, intersected with the
  quantity's range (an error rate's interval stays inside [0, 1]; the true mean lies
  in the range, so the intersection keeps the t interval's coverage).
- ``wilson``: Wilson's score interval for a proportion of pooled predictions
  (Wilson 1927; Brown, Cai and DasGupta 2001 recommend it over the Wald interval).
- ``paired_difference``: the t interval of the mean per-seed difference of two arms
  that share data and seeds (seed ``s`` of arm A against seed ``s`` of arm B).
- ``noninferiority`` and ``equivalence``: one-sided and two one-sided tests (TOST,
  Schuirmann 1987) on paired differences against a margin fixed before the run.
  "Not clearly different" is never read as "as good as": only a bound inside the
  margin is.
- ``slope_interval``: a least-squares slope with a bootstrap percentile interval
  (resampling the runs within each x, so every x keeps its place).

t quantiles and the normal quantile come from SciPy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _sp

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided interval.

    ``n`` is the number of independent units behind it (seeds, or predictions
    for a Wilson interval); ``method`` names how the interval was made.
    """

    estimate: float
    low: float
    high: float
    n: int
    method: str
    level: float = LEVEL

    def __post_init__(self) -> None:
        if not (math.isnan(self.estimate) or self.low <= self.estimate <= self.high):
            raise ValueError(f"interval [{self.low}, {self.high}] does not contain its estimate {self.estimate}")

    def above(self, other: "Interval | float") -> bool:
        """True when this interval lies entirely above ``other`` (an interval or a number)."""
        return self.low > (other.high if isinstance(other, Interval) else other)

    def below(self, other: "Interval | float") -> bool:
        """True when this interval lies entirely below ``other``."""
        return self.high < (other.low if isinstance(other, Interval) else other)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_dict(self, digits: int = 4) -> dict:
        """Rounded fields for a claim's evidence."""
        d = asdict(self)
        for k in ("estimate", "low", "high"):
            d[k] = round(d[k], digits) if math.isfinite(d[k]) else d[k]
        return d

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}] (n={self.n}, {self.method})"


def _clean(values: Iterable[float]) -> np.ndarray:
    """Finite values only (a diverged run is reported apart, never averaged in)."""
    v = np.asarray([float(x) for x in values], dtype=float)
    return v[np.isfinite(v)]


def t_critical(df: int, level: float = LEVEL) -> float:
    """Two-sided Student's t critical value (``inf`` for ``df < 1``)."""
    return math.inf if df < 1 else float(_sp.t.ppf(0.5 + level / 2, df))


def mean_interval(values: Iterable[float], bounds: tuple[float, float] = (-math.inf, math.inf),
                  level: float = LEVEL) -> Interval:
    """Mean over independent runs with Student's t interval, intersected with ``bounds``.

    Args:
        values: one number per run (NaN and inf dropped).
        bounds: the range the quantity lives in, e.g. ``(0, 1)`` for an error rate.

    A single run gives the whole range: one run cannot bound a mean.
    """
    v = _clean(values)
    lo_b, hi_b = bounds
    if len(v) == 0:
        return Interval(math.nan, lo_b, hi_b, 0, "no finite runs", level)
    m = float(v.mean())
    if len(v) == 1:
        return Interval(m, lo_b, hi_b, 1, "one run: unbounded", level)
    h = t_critical(len(v) - 1, level) * float(v.std(ddof=1)) / math.sqrt(len(v))
    method = "t over runs" + (f", within [{lo_b:g}, {hi_b:g}]" if math.isfinite(lo_b) or math.isfinite(hi_b) else "")
    return Interval(m, max(lo_b, m - h), min(hi_b, m + h), len(v), method, level)


def rate_interval(values: Iterable[float], level: float = LEVEL) -> Interval:
    """``mean_interval`` for a rate (error, accuracy, IoU): the interval stays inside [0, 1]."""
    return mean_interval(values, (0.0, 1.0), level)


def wilson(successes: int, n: int, level: float = LEVEL) -> Interval:
    """Wilson score interval for a proportion ``successes / n`` (e.g. wrong predictions over a pooled test set)."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"wilson: need 0 <= successes <= n and n >= 1, got successes={successes}, n={n}")
    z = float(_sp.norm.ppf(0.5 + level / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at p = 0 or 1 one end equals p exactly; rounding can put it a hair past p, so clamp it there
    return Interval(p, min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)), n, "Wilson score", level)


def _paired(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal lengths, got {a.shape} and {b.shape}")
    d = a - b
    return d[np.isfinite(d)]


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean of the per-seed differences ``a[i] - b[i]`` with its t interval (seed ``i`` in both arms)."""
    d = _paired(a, b)
    iv = mean_interval(d, level=level)
    return Interval(iv.estimate, iv.low, iv.high, iv.n, "paired t over seeds", level)


@dataclass(frozen=True)
class MarginTest:
    """The outcome of a non-inferiority or equivalence test on paired differences.

    ``decision`` is ``"within"`` (shown inside the margin), ``"outside"`` (shown
    beyond it) or ``"undecided"``; ``interval`` is the (1 - 2 alpha) interval of
    the mean difference the decision reads.
    """

    decision: str
    margin: float
    interval: Interval
    p_value: float
    alpha: float

    def as_dict(self) -> dict:
        return {"decision": self.decision, "margin": self.margin, "difference": self.interval.as_dict(),
                "p_value": round(self.p_value, 5), "alpha": self.alpha}


def _margin_interval(a: Sequence[float], b: Sequence[float], alpha: float, method: str
                     ) -> Interval | tuple[int, float, float, Interval]:
    """The (1 - 2 alpha) paired t interval of mean(a - b) as ``(n, mean, se, interval)``; an unbounded
    ``Interval`` alone when fewer than two pairs are finite."""
    d = _paired(a, b)
    n = len(d)
    if n < 2:
        return Interval(float(d.mean()) if n else math.nan, -math.inf, math.inf, n, method)
    m, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(n)
    crit = float(_sp.t.ppf(1 - alpha, n - 1))
    return n, m, se, Interval(m, m - crit * se, m + crit * se, n, method, 1 - 2 * alpha)


def noninferiority(a: Sequence[float], b: Sequence[float], margin: float, alpha: float = 0.05) -> MarginTest:
    """Is arm A no more than ``margin`` worse than arm B, for a quantity where lower is better (e.g. error)?

    One-sided paired t test of ``H0: mean(a - b) >= margin`` at level ``alpha``:
    ``within`` when the upper ``1 - alpha`` bound of the mean difference is below
    the margin, ``outside`` when the lower bound is above it (A is worse by more
    than the margin), else ``undecided``.
    """
    if not margin > 0:
        raise ValueError(f"margin={margin!r}: a non-inferiority margin must be > 0, fixed before the run")
    got = _margin_interval(a, b, alpha, f"paired t, {100 * (1 - 2 * alpha):g}% (one-sided {100 * (1 - alpha):g}% "
                                        "bounds)")
    if isinstance(got, Interval):
        return MarginTest("undecided", margin, got, 1.0, alpha)
    n, m, se, iv = got
    lo, hi = iv.low, iv.high
    p = float(_sp.t.cdf((m - margin) / se, n - 1)) if se > 0 else float(m >= margin)
    decision = "within" if hi < margin else "outside" if lo > margin else "undecided"
    return MarginTest(decision, margin, iv, p, alpha)


def equivalence(a: Sequence[float], b: Sequence[float], margin: float, alpha: float = 0.05) -> MarginTest:
    """Two one-sided tests (TOST): is ``|mean(a - b)| < margin``?

    ``within`` when the (1 - 2 alpha) interval of the mean paired difference lies
    inside ``(-margin, margin)``; ``outside`` when it lies entirely beyond one side;
    else ``undecided``. The p-value is the larger of the two one-sided p-values.
    """
    if not margin > 0:
        raise ValueError(f"margin={margin!r}: an equivalence margin must be > 0, fixed before the run")
    got = _margin_interval(a, b, alpha, f"TOST, paired t, {100 * (1 - 2 * alpha):g}%")
    if isinstance(got, Interval):
        return MarginTest("undecided", margin, got, 1.0, alpha)
    n, m, se, iv = got
    lo, hi = iv.low, iv.high
    if se > 0:
        p = max(float(_sp.t.sf((m + margin) / se, n - 1)), float(_sp.t.cdf((m - margin) / se, n - 1)))
    else:
        p = 0.0 if abs(m) < margin else 1.0
    decision = "within" if -margin < lo and hi < margin else "outside" if lo > margin or hi < -margin \
        else "undecided"
    return MarginTest(decision, margin, iv, p, alpha)


def slope_interval(x: Sequence[float], y: Sequence[float], n_boot: int = 2000, seed: int = 0,
                   level: float = LEVEL) -> Interval:
    """Least-squares slope of ``y`` on ``x`` with a bootstrap percentile interval.

    Each bootstrap sample redraws, for every distinct ``x``, as many points as it
    has from those at that ``x`` (a stratified bootstrap over runs); ``n`` is the
    number of points. Needs at least two distinct ``x``.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    levels = np.unique(x)
    if len(levels) < 2:
        raise ValueError(f"slope_interval needs at least two distinct x values, got {levels.tolist()}")
    slope = float(np.polyfit(x, y, 1)[0])
    groups = [np.flatnonzero(x == v) for v in levels]
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(g, size=(n_boot, len(g)), replace=True) for g in groups], axis=1)
    xs, ys = x[idx], y[idx]
    xc = xs - xs.mean(1, keepdims=True)
    boots = (xc * (ys - ys.mean(1, keepdims=True))).sum(1) / (xc ** 2).sum(1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return Interval(slope, min(float(lo), slope), max(float(hi), slope), len(x), "bootstrap percentile, "
                    "runs resampled within each x", level)


def summarize(df: pd.DataFrame, by: list[str], value: str, bounds: tuple[float, float] = (-math.inf, math.inf)
              ) -> pd.DataFrame:
    """Per group: number of runs, mean and 95% interval of ``value`` (``mean_interval`` with ``bounds``)."""
    rows = []
    for key, g in df.groupby(by, sort=True):
        iv = mean_interval(g[value], bounds)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "runs": len(g), "mean": iv.estimate, "ci_low": iv.low,
                     "ci_high": iv.high})
    return pd.DataFrame(rows)
