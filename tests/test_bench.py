"""skipanalysis.pipeline.bench: the training loop against a bare torch loop."""


def test_bench_runs_and_compares(capsys):
    from skipanalysis.pipeline import bench

    assert bench.main(["--steps", "2", "--rounds", "2", "--sizes", "8"]) == 0
    out = capsys.readouterr().out
    assert "loop/bare" in out and "residual-20" in out and "plain-56" in out


def test_paired_ratio_is_the_median_of_per_round_ratios():
    import pytest

    from skipanalysis.measure.timing import paired_ratio

    # rounds: bare 1.0/2.0/1.1 s, loop 1.25/2.0/1.0 s -> ratios 0.8, 1.0, 1.1 (worked by hand)
    med, lo, hi = paired_ratio([1.0, 2.0, 1.1], [1.25, 2.0, 1.0])
    assert (med, lo, hi) == pytest.approx((1.0, 0.8, 1.1))
    # drift: the machine slows 3x in round 2 for both loops; paired, each round says 0.9
    assert paired_ratio([1.0, 3.0, 1.0], [1.0 / 0.9, 3.0 / 0.9, 1.0 / 0.9])[0] == pytest.approx(0.9)
    assert paired_ratio([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 2.0, 2.0])[0] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="same number"):
        paired_ratio([1.0], [])


def test_bench_rejects_bad_rounds(capsys):
    from skipanalysis.pipeline import bench

    assert bench.main(["--rounds", "0"]) == 2
    assert "--rounds=0" in capsys.readouterr().err
