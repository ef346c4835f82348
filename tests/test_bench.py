"""skipanalysis.bench: the training loop against a bare torch loop."""


def test_bench_runs_and_compares(capsys):
    from skipanalysis import bench

    assert bench.main(["--steps", "2", "--sizes", "8"]) == 0
    out = capsys.readouterr().out
    assert "loop/bare" in out and "residual-20" in out and "plain-56" in out
