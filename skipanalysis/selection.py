"""Learning-rate selection outside the sample: one selector for every study that tunes a rate on
training runs.

A rate chosen on a run that is then compared favours that run's arm by the luck of that seed (the
best of k draws is biased low). So the rate of each arm is chosen on a *selection seed* that is not
among the compared seeds (``selection_seed``: the first seed plus 10,000, so adding seeds to the
sample never moves it), by ``best_rate`` (the lowest final value of the arm's criterion, diverged
runs last, ties to the smaller rate); the compared seeds then all train at that rate. Notebook 08
chooses on a validation split instead (``studies.param_efficiency.choose_lrs``), which keeps the
criterion out of the sample too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

SELECTION_OFFSET = 10_000


def selection_seed(seeds: Sequence[int]) -> int:
    """The seed the rates are chosen on: the first compared seed plus ``SELECTION_OFFSET``, never
    one of ``seeds`` and the same however many seeds follow the first."""
    pick = min(seeds) + SELECTION_OFFSET
    if pick in seeds:
        raise ValueError(f"seeds={list(seeds)!r} reach the selection seed {pick}; use fewer than "
                         f"{SELECTION_OFFSET} seeds")
    return pick


def best_rate(tried: Iterable[tuple[float, bool, float]]) -> float:
    """The rate of the best of ``(rate, diverged, criterion)`` runs: not diverged first, then the
    lowest criterion (NaN last), then the smaller rate."""
    def key(t):
        lr, diverged, value = t
        value = float(value)
        return bool(diverged), value if math.isfinite(value) else math.inf, lr
    tried = list(tried)
    if not tried:
        raise ValueError("best_rate needs at least one run")
    return min(tried, key=key)[0]
