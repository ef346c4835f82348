"""plotting: stable figure names and files."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from skipanalysis import plotting


def test_save_figure_writes_stable_names(tmp_path):
    plotting.set_theme()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = plotting.save_figure(fig, "my-plot", notebook="03_equivalence", report_dir=tmp_path,
                                 caption="c",
                                 show=False)
    assert {p.name for p in paths.values()} == {f"03_equivalence-my-plot.{f}"
                                                for f in ("png", "svg", "pdf")}
    assert all(p.stat().st_size > 0 for p in paths.values())
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "figures").glob(".*"))


def test_save_figure_rejects_bad_names(tmp_path):
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="figure name='My Plot'"):
        plotting.save_figure(fig, "My Plot", notebook="x", report_dir=tmp_path, caption="c",
                             show=False)


def test_the_notebook_save_figure_writes_the_files_and_returns_nothing(tmp_path):
    from skipanalysis.pipeline.notebook import setup

    ctx = setup("03_equivalence", profile="smoke", device="cpu", report_dir=tmp_path)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    # a cell ending with it shows no paths
    assert ctx.save_figure(fig, "line", caption="c", show=False) is None
    assert (tmp_path / "figures" / "03_equivalence-line.png").exists()
