"""make full-check: its caps validate against every notebook, reach every reader of a profile
section, and mark every verdict; bad input stops in one line before anything is written. (The check
itself runs in .ci/run.)"""

import numpy as np
import pandas as pd
import pytest

from skipanalysis import params
from skipanalysis.claims import CAPPED_MARK, ClaimBook
from skipanalysis.figures import degradation as figs
from skipanalysis.pipeline import full_check as fc
from skipanalysis.pipeline import runner
from skipanalysis.rules.core import Decision

FULL = fc.full_parameters()


def test_caps_validate_for_every_notebook():
    fc.check_overlay(fc.caps(FULL), "cpu")  # raises ParameterError naming the notebook otherwise
    assert set(fc.caps(FULL)) == set(fc.ORDER) == {p.stem
                                                   for p in fc.NOTEBOOKS.glob("[0-9]*.ipynb")}


def test_the_knob_sets_steps_by_hand():
    c = fc.caps(FULL, steps=6)
    # 01: 6 steps of 128 images over 256 images is 3 epochs; warm-up half of the steps, and its path
    # kept
    assert c["01_degradation"]["epochs"] == 3.0 and c["01_degradation"]["warmup_steps"] == 3
    assert (c["01_degradation"]["depths"] == [20, 32]
            and c["01_degradation"]["warmup_min_depth"] == 32)
    # 06: 24 slices of 512 px in 128 px tiles (16 a slice) with one elastic copy each (capped from
    # 3): 768 tiles
    assert (c["06_unet_skips"]["epochs"] == round(6 * 16 / 768, 4)
            and c["06_unet_skips"]["elastic_copies"] == 1)
    assert c["08_param_efficiency"]["steps"] == 6
    assert fc.ends([8, 20, 32]) == [8, 32] and fc.ends([1]) == [1] and fc.shallow(
        [56, 20, 110]) == [20, 56]
    with pytest.raises(params.ParameterError, match="steps=0 is not allowed"):
        fc.caps(FULL, steps=0)


def test_a_bad_cap_names_the_notebook_and_parameter():
    bad = {**fc.caps(FULL), "04_cost": {"repeats": 2}}
    with pytest.raises(params.ParameterError,
                       match="04_cost capped: parameter repeats=2 is not allowed"):
        fc.check_overlay(bad, "cpu")


def test_overlay_reaches_profile_readers_and_marks_claims(tmp_path, monkeypatch):
    overlay = tmp_path / "caps.yaml"
    overlay.write_text("01_degradation: {seeds: 2, depths: [20, 110]}\n")
    nb = fc.NOTEBOOKS / "01_degradation.ipynb"
    assert params.overlay("01_degradation") is None
    assert runner.resolved_parameters(nb, "full")["seeds"] == 5
    monkeypatch.setenv(params.OVERLAY_ENV, str(overlay))
    got = runner.resolved_parameters(nb, "full")  # what 02 and 07 read through ctx.parameters_of
    assert (got["seeds"], got["depths"], got["epochs"]) == (2, [20, 110], 163.84)
    assert runner.notebook_parameters(nb, "full", "cpu", tmp_path)["depths"] == [20, 110]
    book = ClaimBook(notebook="01_degradation", report_dir=tmp_path, device="cpu", profile="full")
    book.record("D4", Decision("D4", "supported", "a rule"), evidence={}, headline="plain 0.04")
    rec = book.to_dict()
    assert rec["capped"] == {"seeds": 2, "depths": [20, 110]}
    assert rec["claims"][0]["headline"] == f"{CAPPED_MARK} plain 0.04"
    assert rec["claims"][0]["evidence"]["capped"] == {"seeds": 2, "depths": [20, 110]}
    overlay.write_text("01_degradation: {no_such: 1}\n")
    with pytest.raises(params.ParameterError, match=f"with {params.OVERLAY_ENV}=.*no_such"):
        runner.notebook_parameters(nb, "full", "cpu", tmp_path)


def test_bad_input_stops_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "check"
    assert fc.main(["--out", str(out), "--steps", "0"]) == 2
    assert "steps=0 is not allowed" in capsys.readouterr().err
    assert fc.main(["--out", str(fc.REPO / "reports" / "full")]) == 2
    assert "must not be reports/full" in capsys.readouterr().err
    assert not out.exists()


def test_plot_distances_takes_non_finite_rows():
    # a diverged deep net gives inf distances; seaborn drops them, which needs one index label a row
    # (the
    # capped check found concatenated frames sharing labels)

    # one net's two blocks, indexed 0 and 1 as block_distances returns them
    def net(kind, state, corr):
        return pd.DataFrame({"block": [0, 1], "corr_identity": corr, "to_identity": [1.0, 1.1],
                             "w_to_dirac": [1.4, 1.4], "kind": kind, "state": state})

    rows = pd.concat(
        [net("plain", "trained", [0.1, np.inf]), net("residual", "trained", [0.9, 0.8]),
                      net("plain", "initial", [0.1, 0.2]), net("residual", "initial", [0.9, 0.9])])
    assert not rows.index.is_unique
    fig = figs.plot_distances(rows)
    assert len(fig.axes) >= 3


def test_cifar10_folder_unpacks_an_imagefolder_export(tmp_path):
    import tarfile

    src = tmp_path / "src" / "cifar10-jpeg"
    for split in ("train", "test"):
        (src / split / "cat").mkdir(parents=True)
        (src / split / "cat" / "0001.jpg").write_bytes(b"x")
    archive = tmp_path / "export.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar10-jpeg")
    assert fc.cifar10_folder(archive, tmp_path / "into") == tmp_path / "into" / "cifar10-jpeg"
    with pytest.raises(params.ParameterError, match="--cifar-archive .*none.tar.gz does not exist"):
        fc.cifar10_folder(tmp_path / "none.tar.gz", tmp_path / "into2")
