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
- ``clopper_pearson``: the exact binomial interval for small counts (trained runs out of
  seeds): it never undercovers, where Wilson's at 4 of 4 reads a lower bound of 0.51
  against the exact 0.40.
- ``slope_interval``: a least-squares slope. With the seed of each point given, the
  seeds are the units: one slope per seed over all its depths (a seed's runs move
  together) and Student's t interval over the per-seed slopes; without seeds, a
  bootstrap within each x (named as such, for points that are independent).
- ``holm``: Holm's step-down adjustment of p-values over a union ("at some rate").
- Power: ``power_difference`` and ``power_noninferiority`` (noncentral t, the same
  paired t decisions the rules make), ``power_by_simulation`` for designs without a
  formula, and ``seeds_for_power``.

One alpha for the whole study, ``ALPHA`` = 0.05 two-sided: every decision reads a 95%
interval, so a one-sided bound (non-inferiority, each side of TOST) is at 0.025.

t quantiles, the noncentral t and the binomial come from SciPy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as _sp

ALPHA = 0.05  # the study's alpha, two-sided; each one-sided bound at ALPHA / 2
LEVEL = 0.95  # = 1 - ALPHA: every decision reads a 95% interval
ONE_SIDED = ALPHA / 2


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
            raise ValueError(
                f"interval [{self.low}, {self.high}] does not contain its estimate {self.estimate}")

    def above(self, other: Interval | float) -> bool:
        """True when this interval lies entirely above ``other`` (an interval or a number)."""
        return self.low > (other.high if isinstance(other, Interval) else other)

    def below(self, other: Interval | float) -> bool:
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
    method = "t over runs" + (f", within [{lo_b:g}, {hi_b:g}]" if math.isfinite(lo_b)
                              or math.isfinite(hi_b) else "")
    return Interval(m, max(lo_b, m - h), min(hi_b, m + h), len(v), method, level)


def rate_interval(values: Iterable[float], level: float = LEVEL) -> Interval:
    """``mean_interval`` for a rate (error, accuracy, IoU): the interval stays inside [0, 1]."""
    return mean_interval(values, (0.0, 1.0), level)


def wilson(successes: int, n: int, level: float = LEVEL) -> Interval:
    """Wilson score interval for a proportion ``successes / n`` (e.g. wrong predictions over a
    pooled test set)."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(
            f"wilson: need 0 <= successes <= n and n >= 1, got successes={successes}, n={n}")
    z = float(_sp.norm.ppf(0.5 + level / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at p = 0 or 1 one end equals p exactly; rounding can put it a hair past p, so clamp it there
    return Interval(p, min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)), n,
                    "Wilson score", level)


def _paired(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal lengths, got {a.shape} and {b.shape}")
    d = a - b
    return d[np.isfinite(d)]


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean of the per-seed differences ``a[i] - b[i]`` with its t interval (seed ``i`` in both
    arms)."""
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
        return {"decision": self.decision, "margin": self.margin,
                "difference": self.interval.as_dict(),
                "p_value": round(self.p_value, 5), "alpha": self.alpha}


def _margin_interval(a: Sequence[float], b: Sequence[float], alpha: float, method: str
                     ) -> Interval | tuple[int, float, float, Interval]:
    """The (1 - 2 alpha) paired t interval of mean(a - b) as ``(n, mean, se, interval)``; an
    unbounded ``Interval`` alone when fewer than two pairs are finite."""
    d = _paired(a, b)
    n = len(d)
    if n < 2:
        return Interval(float(d.mean()) if n else math.nan, -math.inf, math.inf, n, method)
    m, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(n)
    crit = float(_sp.t.ppf(1 - alpha, n - 1))
    return n, m, se, Interval(m, m - crit * se, m + crit * se, n, method, 1 - 2 * alpha)


def noninferiority(a: Sequence[float], b: Sequence[float], margin: float,
                   alpha: float = ONE_SIDED) -> MarginTest:
    """Is arm A no more than ``margin`` worse than arm B, for a quantity where lower is better (e.g.
    error)?

    One-sided paired t test of ``H0: mean(a - b) >= margin`` at level ``alpha``: ``within`` when the
    upper ``1 - alpha`` bound of the mean difference is below the margin, ``outside`` when the lower
    bound is above it (A is worse by more than the margin), else ``undecided``.
    """
    if not margin > 0:
        raise ValueError(
            f"margin={margin!r}: a non-inferiority margin must be > 0, fixed before the run")
    got = _margin_interval(
        a, b, alpha, f"paired t, {100 * (1 - 2 * alpha):g}% (one-sided {100 * (1 - alpha):g}% "
                                        "bounds)")
    if isinstance(got, Interval):
        return MarginTest("undecided", margin, got, 1.0, alpha)
    n, m, se, iv = got
    lo, hi = iv.low, iv.high
    p = float(_sp.t.cdf((m - margin) / se, n - 1)) if se > 0 else float(m >= margin)
    decision = "within" if hi < margin else "outside" if lo > margin else "undecided"
    return MarginTest(decision, margin, iv, p, alpha)


def equivalence(a: Sequence[float], b: Sequence[float], margin: float,
                alpha: float = ONE_SIDED) -> MarginTest:
    """Two one-sided tests (TOST): is ``|mean(a - b)| < margin``?

    ``within`` when the (1 - 2 alpha) interval of the mean paired difference lies
    inside ``(-margin, margin)``; ``outside`` when it lies entirely beyond one side;
    else ``undecided``. The p-value is the larger of the two one-sided p-values.
    """
    if not margin > 0:
        raise ValueError(
            f"margin={margin!r}: an equivalence margin must be > 0, fixed before the run")
    got = _margin_interval(a, b, alpha, f"TOST, paired t, {100 * (1 - 2 * alpha):g}%")
    if isinstance(got, Interval):
        return MarginTest("undecided", margin, got, 1.0, alpha)
    n, m, se, iv = got
    lo, hi = iv.low, iv.high
    if se > 0:
        p = max(float(_sp.t.sf((m + margin) / se, n - 1)),
                float(_sp.t.cdf((m - margin) / se, n - 1)))
    else:
        p = 0.0 if abs(m) < margin else 1.0
    decision = ("within" if -margin < lo and hi < margin
                else "outside" if lo > margin or hi < -margin else "undecided")
    return MarginTest(decision, margin, iv, p, alpha)


def clopper_pearson(successes: int, n: int, level: float = LEVEL) -> Interval:
    """Clopper-Pearson (exact binomial) interval for ``successes / n``: coverage at least ``level``
    for every true rate, which Wilson's score interval does not give at a handful of seeds."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(
            f"clopper_pearson: need 0 <= successes <= n and n >= 1, got successes={successes}, "
            f"n={n}")
    ci = _sp.binomtest(int(successes), int(n)).proportion_ci(level, method="exact")
    p = successes / n
    return Interval(p, min(p, float(ci.low)), max(p, float(ci.high)), n, "Clopper-Pearson (exact)",
                    level)


def _ls_slope(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc ** 2).sum())


def slope_interval(x: Sequence[float], y: Sequence[float], n_boot: int = 2000, seed: int = 0,
                   level: float = LEVEL, groups: Sequence | None = None) -> Interval:
    """Least-squares slope of ``y`` on ``x`` with a 95% interval that respects how the points were
    drawn.

    ``groups`` (the seed of each point): points of one seed share its data order and initialisation,
    so they are not independent. The unit is then the seed: the slope of each seed's own points (it
    needs two distinct x), and Student's t interval over those per-seed slopes. With the same x for
    every seed the estimate equals the pooled least-squares slope. Without ``groups``: a bootstrap
    percentile interval that redraws the points within each x (independent points only). Needs at
    least two distinct x.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    g = None if groups is None else np.asarray(list(groups), dtype=object)
    if g is not None and len(g) != len(x):
        raise ValueError(f"slope_interval: groups has {len(g)} entries for {len(x)} points")
    x, y = x[keep], y[keep]
    levels = np.unique(x)
    if len(levels) < 2:
        raise ValueError(
            f"slope_interval needs at least two distinct x values, got {levels.tolist()}")
    if g is not None:
        g = g[keep]
        per = [_ls_slope(x[g == k], y[g == k]) for k in dict.fromkeys(g.tolist())
               if len(np.unique(x[g == k])) >= 2]
        iv = mean_interval(per, level=level)
        return Interval(iv.estimate, iv.low, iv.high, iv.n,
                        "t over per-seed slopes (a seed's runs at every x "
                        "together)", level)
    slope = _ls_slope(x, y)
    groups_x = [np.flatnonzero(x == v) for v in levels]
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(k, size=(n_boot, len(k)), replace=True) for k in groups_x],
                         axis=1)
    xs, ys = x[idx], y[idx]
    xc = xs - xs.mean(1, keepdims=True)
    boots = (xc * (ys - ys.mean(1, keepdims=True))).sum(1) / (xc ** 2).sum(1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return Interval(slope, min(float(lo), slope), max(float(hi), slope), len(x),
                    "bootstrap percentile, "
                    "runs resampled within each x", level)


def holm(p_values: Mapping[str, float] | Sequence[float], alpha: float = ALPHA) -> dict:
    """Holm's step-down procedure over a family of tests (a union: "at some rate", "at some depth").

    Sort the m p-values; the k-th smallest (k = 1..m) is compared with alpha / (m - k + 1) and the
    procedure stops at the first that is not below it. Returns the adjusted p-values (monotone,
    capped at 1) and which hypotheses are rejected at ``alpha``, keyed as given (positions for a
    sequence). Controls the family-wise error at alpha.
    """
    items = list(p_values.items()) if isinstance(p_values, Mapping) else list(enumerate(p_values))
    m = len(items)
    order = sorted(range(m), key=lambda i: items[i][1])
    adjusted, running = {}, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(items[i][1])))
        adjusted[items[i][0]] = running
    return {"adjusted": adjusted, "rejected": {k: adjusted[k] < alpha for k, _ in items},
            "alpha": alpha,
            "method": f"Holm over {m} tests"}


def one_sided_p(values: Sequence[float], direction: str = "above") -> float:
    """One-sided p-value of a one-sample t test of mean(values) against 0 (``above``: H1 mean >
    0)."""
    v = _clean(values)
    if len(v) < 2:
        return 1.0
    sd = float(v.std(ddof=1))
    if sd == 0:
        return 0.0 if (v.mean() > 0 if direction == "above" else v.mean() < 0) else 1.0
    t = float(v.mean()) / (sd / math.sqrt(len(v)))
    return float(_sp.t.sf(t, len(v) - 1) if direction == "above" else _sp.t.cdf(t, len(v) - 1))


def power_difference(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of "the 95% paired t interval of the mean difference lies above 0" when the true mean
    difference is ``effect`` (> 0) and the per-seed differences have standard deviation ``sd``: P(T
    > t_crit) for T noncentral t with n - 1 degrees of freedom and noncentrality effect sqrt(n) /
    sd."""
    if n < 2:
        return 0.0
    if sd <= 0:
        return 1.0 if effect > 0 else 0.0
    df = n - 1
    return float(_sp.nct.sf(_sp.t.ppf(1 - alpha / 2, df), df, effect * math.sqrt(n) / sd))


def power_noninferiority(true_diff: float, margin: float, sd: float, n: int,
                         alpha: float = ALPHA) -> float:
    """Power of "the upper one-sided bound (alpha / 2) of mean(a - b) lies below ``margin``" when
    the true mean of the paired differences is ``true_diff`` (0 when the arms are equally good)."""
    if n < 2:
        return 0.0
    if sd <= 0:
        return 1.0 if true_diff < margin else 0.0
    df = n - 1
    return float(
        _sp.nct.cdf(-_sp.t.ppf(1 - alpha / 2, df), df, (true_diff - margin) * math.sqrt(n) / sd))


def power_by_simulation(decide, draw, n: int, sims: int = 2000, seed: int = 0) -> float:
    """Share of ``sims`` simulated studies of ``n`` seeds in which ``decide(sample)`` is true;
    ``draw(rng, n)`` makes one simulated sample. For designs without a closed form (rates of trained
    runs, composite rules)."""
    rng = np.random.default_rng(seed)
    return float(np.mean([bool(decide(draw(rng, n))) for _ in range(sims)]))


def seeds_for_power(power, target: float = 0.8, start: int = 2, most: int = 200) -> int | None:
    """The smallest number of seeds ``n >= start`` with ``power(n) >= target``, or None if even
    ``most`` does not reach it (the effect is too small for the noise)."""
    for n in range(start, most + 1):
        if power(n) >= target:
            return n
    return None


def summarize(df: pd.DataFrame, by: list[str], value: str,
              bounds: tuple[float, float] = (-math.inf, math.inf)
              ) -> pd.DataFrame:
    """Per group: number of runs, mean and 95% interval of ``value`` (``mean_interval`` with
    ``bounds``)."""
    rows = []
    for key, g in df.groupby(by, sort=True):
        iv = mean_interval(g[value], bounds)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "runs": len(g), "mean": iv.estimate, "ci_low": iv.low,
                     "ci_high": iv.high})
    return pd.DataFrame(rows)
