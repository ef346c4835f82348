"""make gpu-check: the whole path at tiny size on a CPU, and its arithmetic against hand-worked
numbers."""

import json

import pandas as pd
import pytest

from skipanalysis.pipeline import gpu_check as gc


def test_tiny_check_runs_on_a_cpu(tmp_path):
    keep = tmp_path / "kept"
    assert gc.main(["--device", "cpu", "--tiny", "--share", "1", "--out", str(tmp_path), "--keep",
                    str(keep)]) == 0
    out = json.loads((tmp_path / "gpu-check.json").read_text())
    assert {(r["kind"], r["depth"]) for r in out["rates"]} == {(k, d) for k in gc.KINDS
                                                               for d in (8, 14)}
    assert all(r["alone_images_s"] > 0 and r["shared_images_s"] > 0 for r in out["rates"])
    assert out["card"]["steps"] == 2 and out["card"]["executor"] == "local"
    assert (tmp_path / "hardware" / out["hardware_file"]).exists() and (
        keep / out["hardware_file"]).exists()
    assert out["estimate_01"]["runs"] == 70


def test_full_runs_of_01_by_hand():
    p = {"epochs": 163.84, "batch_size": 128, "depths": [20, 32, 44, 56, 110], "seeds": 5,
         "highway_seeds": 5,
         "lrs": [0.1], "construct_epochs": 163.84}
    runs = gc.full_runs(p)
    steps = round(163.84 * 391)  # 50,000 images: 391 batches of 128 an epoch
    assert steps == 64061
    # 2 kinds x 5 depths x 5 seeds, the highway-110 seeds, D1's and D5's twice-the-budget runs, D3's
    # constructions
    assert runs.runs.sum() == 50 + 5 + 5 + 5 + 5
    assert runs.images.sum() == 128 * steps * (50 + 5 + 2 * 5 + 2 * 5 + 5)
    # a rate grid adds the selection seed at each rate
    grid = gc.full_runs({**p, "lrs": [0.05, 0.1]})
    assert grid[grid.what == "depth grid"].runs.iloc[0] == 5 + 2


def test_seconds_per_image_is_linear_in_depth():
    rates = pd.DataFrame(
        {"kind": ["plain", "plain"], "depth": [20, 56], "alone_images_s": [1000.0, 500.0]})
    by_hand = 1 / 1000 + (1 / 500 - 1 / 1000) * (110 - 20) / (56 - 20)
    assert gc.seconds_per_image(rates, "plain", 110, "alone_images_s") == pytest.approx(by_hand)
    assert gc.seconds_per_image(rates, "plain", 20, "alone_images_s") == pytest.approx(1 / 1000)


def test_no_cuda_is_one_line(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gc.main(["--device", "cuda", "--tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device cuda" in err[0]
    assert gc.main(["--device", "cpu", "--steps", "0"]) == 2
    assert "--steps 0" in capsys.readouterr().err
