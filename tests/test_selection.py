"""One learning-rate selector, outside the sample: the rate is chosen on a seed that is never
compared."""

from __future__ import annotations

import math

import pytest

from skipanalysis import selection, tasks, train
from skipanalysis.setting import Setting
from skipanalysis.studies import degradation as dg


def test_best_rate_prefers_finished_runs_then_the_lowest_value_then_the_smaller_rate():
    assert selection.best_rate([(0.1, False, 0.3), (0.05, False, 0.2)]) == 0.05
    # a diverged run never wins
    assert selection.best_rate([(0.1, True, 0.0), (0.05, False, 0.9)]) == 0.05
    assert selection.best_rate([(0.1, False, math.nan), (0.2, False, 0.5)]) == 0.2  # NaN last
    # a tie: the smaller rate
    assert selection.best_rate([(0.2, False, 0.1), (0.1, False, 0.1)]) == 0.1
    with pytest.raises(ValueError, match="at least one"):
        selection.best_rate([])


def test_the_selection_seed_is_outside_the_sample():
    assert selection.selection_seed([0, 1, 2, 3, 4]) == 10_000 and selection.selection_seed(
        [7]) == 10_007
    # a seed more moves nothing
    assert selection.selection_seed([0, 1, 2]) == selection.selection_seed([0, 1])
    with pytest.raises(ValueError, match="selection seed"):
        selection.selection_seed(list(range(10_001)))


def test_depth_study_chooses_on_the_selection_seed_and_keeps_every_compared_seed():
    ds = tasks.texture_classification(96, 8, seed=0)
    cfg = train.TrainConfig(epochs=2, batch_size=32, progress=False)
    _, final, models = dg.depth_study(dg.DepthRuns(("residual",), (8,), (0, 1), (1e-6, 0.05)),
                                      Setting(ds, ds, cfg))
    chosen = final[final.role == "selection"]
    # it tried both rates, is not compared
    assert chosen.seed.tolist() == [10_000] * 2 and not chosen.kept.any()
    sample = final[final.role == "sample"]
    assert sample.seed.tolist() == [0, 1] and sample.kept.all() and set(sample.lr) == {0.05}
    assert set(models) == {("residual", 8, 0), ("residual", 8, 1)}
