"""skipanalysis.train: determinism on a CPU, schedules, convergence, bad configurations."""

import math

import numpy as np
import pandas as pd
import pytest

from skipanalysis import tasks, train
from skipanalysis.models import cifar_resnet


def test_same_seed_same_numbers_on_cpu():
    ds = tasks.texture_classification(96, 8, seed=0)
    cfg = train.TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=7, progress=False)
    runs = []
    for _ in range(2):
        train.seed_everything(7)  # the initialisation too
        runs.append(train.train(cifar_resnet(8), ds, cfg).history)
    pd.testing.assert_frame_equal(runs[0], runs[1])
    train.seed_everything(7)
    other = train.train(cifar_resnet(8), ds,
                        train.TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=8,
                                                                  progress=False)).history
    assert not runs[0]["loss"].equals(other["loss"])


def test_divergence_is_recorded_not_raised():
    ds = tasks.texture_classification(64, 8, seed=0)
    res = train.train(cifar_resnet(8, "plain"), ds,
                      train.TrainConfig(epochs=3, batch_size=16, lr=1e6,
                                                                      weight_decay=0,
                                                                      progress=False))
    assert res.diverged and res.final == {}
    assert len(res.history) >= 1


def test_schedule_values():
    cfg = train.TrainConfig(lr=1.0, schedule="step", milestones=(0.5,), warmup_steps=2)
    assert train.lr_at(0, 10, cfg) == 0.5 and train.lr_at(1, 10, cfg) == 1.0
    assert train.lr_at(4, 10, cfg) == 1.0 and train.lr_at(5, 10, cfg) == pytest.approx(0.1)
    cos = train.TrainConfig(lr=1.0, schedule="cosine")
    assert train.lr_at(0, 10, cos) == 1.0 and train.lr_at(5, 10, cos) == pytest.approx(0.5)


def test_bad_train_config():
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        train.TrainConfig(optimizer="rmsprop").validate()


def test_convergence_by_hand():
    # constant rate, loss falls linearly from 2.0 to 1.0 over 100 steps: five parts of 20 have
    # equally spaced
    # means, so the last part brings exactly a quarter of the fall between the first and last parts'
    # means
    losses = [2.0 - i / 99 for i in range(100)]
    c = train.convergence(losses, window=0.2, tol=0.05)
    assert c["late_share"] == pytest.approx(0.25) and not c["converged"]
    assert train.convergence(losses, window=0.2, tol=0.3)["converged"]
    # 0.2 of the way in, the loss is within 8% of 1.0
    plateau = [1.0 + math.exp(-i / 8) for i in range(100)]
    m = [np.mean(plateau[k:k + 20]) for k in range(0, 100, 20)]
    assert train.convergence(plateau)["late_share"] == pytest.approx((m[3] - m[4]) / (m[0] - m[4]))
    assert train.convergence(plateau)["converged"]
    # rising at the rate: no gain left
    assert train.convergence([1.0 + i / 100 for i in range(100)])["converged"]
    assert not train.convergence([1.0] * 10)["converged"]  # too short to tell
    assert not train.convergence([1.0] * 40 + [float("nan")] * 10)["converged"]


def test_an_annealed_flat_tail_is_not_convergence():
    # one-cycle over 200 steps: the loss falls linearly while the rate is at least half its peak and
    # is flat after,
    # as when the rate going to zero freezes a net that was still learning. The old rule (the run's
    # last fifth)
    # read that as converged.
    cfg = train.TrainConfig(lr=0.1, schedule="onecycle")
    lrs = [train.lr_at(i, 200, cfg) for i in range(200)]
    high = [i for i, r in enumerate(lrs) if r >= 0.05]
    losses, value = [], 2.3
    for i in range(200):
        if high[0] <= i <= high[-1]:
            value -= 0.005
        losses.append(value)
    assert np.ptp(losses[160:]) == 0  # the tail is perfectly flat
    c = train.convergence(losses, lrs)
    n = len(high)
    parts = np.array_split(np.asarray(losses[high[0]:high[-1] + 1]), 5)
    assert c["late_share"] == pytest.approx(
        (parts[3].mean() - parts[4].mean()) / (parts[0].mean() - parts[4].mean()))
    assert c["late_share"] == pytest.approx(0.25, abs=0.02) and n > 80 and not c["converged"]
    assert "still falling" in c["reason"]
    # the same run with the errors of a net that fits its data (the last 5% of steps at 1%) has
    # converged
    fits = train.convergence(losses, lrs, [0.5] * 190 + [0.01] * 10)
    assert fits["converged"] and fits["final_err"] == pytest.approx(
        0.01) and "fits" in fits["reason"]
    assert not train.convergence(losses, lrs, [0.5] * 190 + [0.03] * 10)["converged"]


def test_runs_record_convergence_and_bf16_channels_last_train():
    ds = tasks.texture_classification(128, 8, seed=0)
    cfg = train.TrainConfig(epochs=6, batch_size=32, lr=0.05, seed=1, progress=False,
                            precision="bf16",
                            channels_last=True, schedule="onecycle")
    res = train.train(cifar_resnet(8), ds, cfg)
    assert set(res.convergence) >= {"converged", "late_share", "final_err", "reason", "tol", "fit",
                                    "window"}
    assert res.convergence["steps"] == 24 and np.isfinite(res.final["train_err"])
    assert res.history.loss.iloc[-5:].mean() < res.history.loss.iloc[:5].mean()


def test_onecycle_schedule_by_hand():
    cfg = train.TrainConfig(lr=0.1, schedule="onecycle")
    assert train.lr_at(0, 100, cfg) == pytest.approx(0.004)
    assert train.lr_at(30, 100, cfg) == pytest.approx(0.1)
    assert train.lr_at(65, 100, cfg) == pytest.approx(0.05)


@pytest.mark.parametrize("field,value",
                         [("lr", float("inf")), ("lr", float("nan")), ("precision", "fp8"),
                                          ("schedule", "warm")])
def test_bad_train_config_is_one_line(field, value):
    with pytest.raises(ValueError, match=field):
        train.TrainConfig(**{field: value}).validate()
