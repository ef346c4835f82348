"""Means with 95% confidence intervals over seeds, and the interval comparison verdicts use.

The interval is Student's t: ``mean +- t_{0.975, n-1} * s / sqrt(n)``. Two
configurations differ only when their intervals do not overlap, so a verdict
never rests on a single lucky run.
"""

from __future__ import annotations

import math
from typing import Iterable

import pandas as pd

# Two-sided 95% critical values of Student's t by degrees of freedom (standard tables).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t_critical(df: int) -> float:
    """t_{0.975} for ``df`` degrees of freedom (the next smaller tabulated df; 1.96 beyond 120)."""
    if df < 1:
        return math.inf
    if df > 120:
        return 1.960
    return _T975[max(k for k in _T975 if k <= df)]


def mean_ci(values: Iterable[float]) -> tuple[float, float, float]:
    """Mean and 95% interval ``(mean, low, high)``; a single value gives an unbounded interval."""
    v = [float(x) for x in values if x == x]  # drop NaN (diverged runs are reported separately)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan
    m = sum(v) / n
    if n == 1:
        return m, -math.inf, math.inf
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1))
    h = t_critical(n - 1) * s / math.sqrt(n)
    return m, m - h, m + h


def summarize(df: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Per group: number of runs, mean and 95% interval of ``value``."""
    rows = []
    for key, g in df.groupby(by, sort=True):
        m, lo, hi = mean_ci(g[value])
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "runs": len(g), "mean": m, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def clearly_greater(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """True when interval ``a`` lies entirely above interval ``b`` (no overlap)."""
    return a[1] > b[2]


def overlap(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """True when the two intervals overlap."""
    return not (a[1] > b[2] or b[1] > a[2])
