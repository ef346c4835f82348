"""Notebook 06's pieces: the U-Net variants, the metrics on hand-made masks, the segmentation
generator."""

import math
from dataclasses import replace

import pytest
import torch

from skipanalysis import data, tasks
from skipanalysis.models import UNet
from skipanalysis.setting import Setting
from skipanalysis.studies import unet_skips as sg
from skipanalysis.studies import unet_skips_data as sd


@pytest.mark.parametrize("skip", ["concat", "add", "none"])
@pytest.mark.parametrize("size", [16, 24, 40])
def test_output_shape_equals_input(skip, size):
    m = UNet(1, 1, depth=3, base=4, skip=skip)
    assert m(torch.randn(2, 1, size, size)).shape == (2, 1, size, size)


def test_indivisible_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"input size 30x30 is not allowed .* multiples of 8"):
        UNet(1, 1, depth=3, base=4)(torch.randn(1, 1, 30, 30))
    with pytest.raises(ValueError, match="skip='sum'"):
        UNet(skip="sum")


def test_variants_differ_only_in_decoder_inputs():
    count = lambda s: sum(p.numel() for p in UNet(1, 1, 3, 8, s).parameters())  # noqa: E731
    assert count("add") == count("none")
    # concat widens each decoder stage's first 3x3 conv input from w to 2w: 9*w*w extra weights per
    # stage
    assert count("concat") - count("add") == sum(9 * w * w for w in (8, 16, 32))


def _square(shift=0):
    m = torch.zeros(1, 8, 8, dtype=torch.bool)
    m[0, 2:6, 2 + shift:6 + shift] = True
    return m


def test_metrics_on_hand_made_masks():
    a, empty = _square(), torch.zeros(1, 8, 8, dtype=torch.bool)
    for f in (sg.dice, sg.iou, sg.boundary_f):
        assert f(a, a).item() == 1.0 and f(empty, empty).item() == 1.0 and f(empty, a).item() == 0.0
    b = _square(shift=1)  # 4x4 squares overlapping in 4x3 pixels: IoU 12/20, Dice 24/32
    assert sg.iou(b, a).item() == pytest.approx(0.6)
    assert sg.dice(b, a).item() == pytest.approx(0.75)
    assert sg.boundary(a).sum().item() == 12  # the 4x4 square's ring
    # every boundary pixel within 1 px of the other's
    assert sg.boundary_f(b, a, tol=1).item() == 1.0
    assert sg.boundary_f(b, a, tol=0).item() == pytest.approx(0.5)


def test_category_iou_perfect_prediction():
    ds = tasks.segmentation_shapes(4, 16, max_width=2, seed=1)
    _, masks, cats = ds.tensors
    df = sg.category_iou(masks > 0.5, masks, cats, tasks.segmentation_categories(2))
    present = df[df.pixels > 0]
    assert (present.iou == 1.0).all()


def test_generator_deterministic_and_masks_match_drawings():
    a = tasks.segmentation_shapes(6, 16, seed=3)
    b = tasks.segmentation_shapes(6, 16, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.tensors, b.tensors))
    _, masks, cats = a.tensors
    assert torch.equal(masks[:, 0] > 0, cats > 0)
    assert not torch.equal(a.tensors[0], tasks.segmentation_shapes(6, 16, seed=4).tensors[0])


def test_drawing_primitives_by_hand():
    disc = tasks.draw_ellipse(9, (4, 4), (2, 2))
    assert disc.sum().item() == 13  # lattice points with x^2 + y^2 <= 4
    line = tasks.draw_curve(9, (4, 1), (4, 4), (4, 7), width=1)  # straight horizontal, 1 px wide
    assert line.sum().item() == 7 and line[4, 1:8].all()
    thick = tasks.draw_curve(9, (4, 1), (4, 4), (4, 7), width=3)
    # radius 1.5: rows 3-5; the caps reach one column past each end, diagonals included (sqrt(2) <=
    # 1.5)
    assert thick[3:6, 0:9].all() and thick.sum().item() == 3 * 9


def test_bad_segmentation_parameters():
    with pytest.raises(ValueError, match="at least 16 px"):
        tasks.segmentation_shapes(2, 8)


def test_matched_decoder_has_concats_convolution_weights():
    from skipanalysis.models.unet import matched_decoder_mid

    def conv_weights(skip):
        m = UNet(1, 1, 3, 8, skip, matched_decoder_mid(skip))
        return sum(p.numel() for n, p in m.named_parameters() if p.dim() == 4)

    assert conv_weights("add") == conv_weights("none") == conv_weights("concat")
    total = lambda s: sum(  # noqa: E731
        p.numel() for p in UNet(1, 1, 3, 8, s, matched_decoder_mid(s)).parameters())
    # batch norm: 1.5w scales and shifts instead of w per stage
    assert total("add") - total("concat") == 8 + 16 + 32
    with pytest.raises(ValueError, match="decoder_mid"):
        UNet(skip="add", decoder_mid=0)


def test_tiles_round_trip_by_hand():
    x = torch.arange(2 * 16).reshape(1, 2, 4, 4).float()
    t = sd.tiles(x, 2)
    assert t.shape == (4, 2, 2, 2)
    assert t[1, 0].tolist() == [[2, 3], [6, 7]]  # the top-right tile of channel 0
    with pytest.raises(ValueError, match="tile=3"):
        sd.tiles(x, 3)


def test_isbi_split_holds_out_whole_slices():
    train_set, test_set = sd.isbi_split(size=64, train_slices=24, tile=32)
    assert train_set.tensors[0].shape == (24 * 4, 1, 32, 32) and test_set.tensors[0].shape == (
        6, 1, 64, 64)
    full = data.isbi2012(size=64)
    # the held-out slices are the last six, whole (standardised grey values, the same masks)
    assert torch.equal(test_set.tensors[1], full.tensors[1][24:])
    assert "slices 24-29 whole" in data.describe(test_set) and "ISBI 2012" in data.describe(
        train_set)
    assert abs(train_set.tensors[0].mean().item()) < 1e-4
    with pytest.raises(ValueError, match="train_slices=30"):
        sd.isbi_split(size=64, train_slices=30, tile=32)


def test_local_thickness_by_hand():
    m = torch.zeros(1, 16, 16)
    m[0, 2, 1:14] = 1          # a 1-px line
    m[0, 6:9, 1:14] = 1        # a 3-px band
    m[0, 11:16, 3:8] = 1       # a 5x5 block touching the border
    th = sd.local_thickness(m, max_radius=4)
    assert (th[0, 2, 1:14] == 1).all()
    # the 3-px band holds the radius-1 disc (a plus: r^2 <= 1.5), which cannot reach the band's four
    # corners
    assert (th[0, 6:9, 2:13] == 3).all() and th[0, 6, 1].item() == 1 and th[0, 7, 1].item() == 3
    # the 5x5 block holds the radius-2 disc (13 px: |x| + |y| <= 2 here), covering a diamond; its
    # corners only
    # fit radius 0, their neighbours radius 1
    assert th[0, 11:16, 3:8].tolist() == [[1, 3, 5, 3, 1], [3, 5, 5, 5, 3], [5, 5, 5, 5, 5],
                                          [3, 5, 5, 5, 3],
                                          [1, 3, 5, 3, 1]]
    assert (th[m == 0] == 0).all()
    cats, names = sd.thickness_categories(th, [1, 3])
    assert names == {1: "<= 1 px", 2: "3 px", 3: "> 3 px"}
    assert ((cats[0, 2, 1:14] == 1).all() and (cats[0, 7, 1:14] == 2).all()
            and cats[0, 13, 5].item() == 3)
    assert (cats[m == 0] == 0).all()


def test_near_boundary_and_added_errors_by_hand():
    t = torch.zeros(1, 1, 6, 6)
    t[0, 0, :, 3:] = 1  # right half foreground: columns 2 and 3 touch the other class
    band = sg.near_boundary(t, 1)
    assert band[0, 0].sum().item() == 12 and band[0, 0, :, 2:4].all()
    assert sg.near_boundary(t, 2)[0, 0].sum().item() == 24
    good = t.bool()
    bad = good.clone()
    bad[0, 0, 0, 2] = True   # one false alarm in the band
    bad[0, 0, 0, 0] = True   # one far from it
    bad[0, 0, 5, 5] = False  # one miss, far from the boundary (column 5)
    out = sg.added_errors(good, bad, t, 1)
    assert out["added"] == 3 and out["added_near"] == 1
    assert (out["share_added_near"] == pytest.approx(1 / 3)
            and out["share_pixels_near"] == pytest.approx(12 / 36))
    # the with-skip net makes no error here: no control share
    assert math.isnan(out["share_control_near"])
    good2 = good.clone()
    good2[0, 0, 1, 2] = True  # its own errors: one in the band (column 2), one far (column 0)
    good2[0, 0, 4, 0] = True
    assert sg.added_errors(good2, bad, t, 1)["share_control_near"] == pytest.approx(1 / 2)


def test_skip_study_through_a_store_trains_once_and_scores_the_same(tmp_path, monkeypatch):
    import pandas as pd

    from skipanalysis import runs, train

    train_set, test_set = sd.isbi_split(size=64, train_slices=24, tile=32)
    cfg = train.TrainConfig(epochs=1, batch_size=16, progress=False)
    calls, real = [], train.train
    monkeypatch.setattr(train, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    setting = Setting(train_set, test_set, cfg, store=runs.RunStore(tmp_path / "store"))
    design = sg.SkipDesign(["concat", "none"], [0, 1], 2, 4, [0.01, 0.05])
    first, preds1, _ = sg.skip_study(design, setting)
    # both rates on the selection seed, both seeds at the kept rate, then the first seed at twice
    # the steps
    assert len(calls) == 2 * 2 + 2 * 2 + 2
    second, preds2, _ = sg.skip_study(design, setting)
    # every run loaded with its weights: the same predictions, so the same scores
    assert len(calls) == 10
    cols = ["skip", "seed", "lr", "kept", "train_loss", "dice", "iou", "boundary_f"]
    pd.testing.assert_frame_equal(first[cols], second[cols])
    assert all(torch.equal(preds1[k], preds2[k]) for k in preds1)
    assert first.groupby("skip").kept.sum().tolist() == [2, 2]
    # converged: the budget check's held-out IoU gain over the same seed's sample run, against the
    # plateau
    check = first[first.role == "budget check"].set_index("skip")
    sample0 = first[(first.role == "sample") & (first.seed == 0)].set_index("skip")
    assert (check.heldout_gain - (check.iou - sample0.iou)).abs().max() < 1e-12
    kept = first[first.kept]
    assert (kept.converged == (kept.skip.map(check.heldout_gain) <= 0.01) & ~kept.diverged).all()
    # no gain is that small: nothing converged
    strict, _, _ = sg.skip_study(replace(design, plateau=-1.0), setting)
    # no check: the training-loss criterion
    never, _, _ = sg.skip_study(replace(design, check=0), setting)
    assert len(calls) == 10 and not strict[strict.kept].converged.any()
    assert ((never[never.kept].converged == first[first.kept].loss_converged).all()
            and "heldout_gain" not in never)


def _write_pairs(root, names, size=(32, 32), mask_size=None):
    import numpy as np
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        grey = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
        mask = np.zeros((mask_size or size)[::-1], dtype=np.uint8)
        mask[:, : 4 + i] = 255  # the first 4 + i columns are foreground
        Image.fromarray(grey).save(root / "images" / f"{name}.png")
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")


def test_a_users_mask_folder_loads_pairs_by_name(tmp_path):
    _write_pairs(tmp_path, ["b", "a", "c"])
    d = data.mask_folder(tmp_path, size=32)
    x, y = d.tensors
    assert x.shape == y.shape == (3, 1, 32, 32) and 0 <= x.min() and x.max() <= 1
    # a, b, c in name order (b was written first with 4 columns)
    assert y[:, 0, 0].sum(-1).tolist() == [5, 4, 6]
    assert "3 labelled images, 32 px" in data.describe(d)
    assert data.mask_folder(tmp_path, size=16).tensors[1].shape == (3, 1, 16, 16)
    train_set, test_set = sd.isbi_split(size=32, train_slices=2, tile=16, folder=tmp_path)
    # two images as 4 tiles each; the last held out whole
    assert len(train_set) == 2 * 4 and len(test_set) == 1


@pytest.mark.parametrize("setup, message", [
    (lambda root: _write_pairs(root, ["a"]) or (root / "masks" / "a.png").unlink(),
     r"1 file\(s\) without a partner.*a"),
    (lambda root: _write_pairs(root, ["a"], mask_size=(16, 16)),
     r"a's image is 32x32 px but its mask 16x16"),
    (lambda root: _write_pairs(root, ["a"], size=(32, 24)),
     r"a is 32x24 px; every image must be square"),
    (lambda root: (root / "images").mkdir(),
     r"masks is missing; expected .*/images/ and .*/masks/"),
])
def test_a_bad_mask_folder_is_one_line_naming_the_files(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(ValueError, match=message):
        data.mask_folder(tmp_path)


def test_a_mask_folder_reads_16_bit_images_and_0_1_label_masks(tmp_path):
    import numpy as np
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    grey = np.zeros((16, 16), dtype=np.uint16)
    grey[0, 0], grey[0, 1] = 65535, 32768  # 16-bit EM data: white and mid-grey
    label = np.zeros((16, 16), dtype=np.uint8)
    label[:, :3] = 1  # a label tool's mask: 1 is foreground
    Image.fromarray(grey).save(tmp_path / "images" / "s.png")
    Image.fromarray(label).save(tmp_path / "masks" / "s.png")
    x, y = data.mask_folder(tmp_path, size=16).tensors
    assert x[0, 0, 0, 0] == 1 and abs(float(x[0, 0, 0, 1]) - 0.5) < 1e-3 and x[0, 0, 1, 1] == 0
    assert y[0, 0].sum() == 16 * 3
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(tmp_path / "masks" / "s.png")
    with pytest.raises(ValueError, match="every mask is empty"):
        data.mask_folder(tmp_path, size=16)
    frames = [Image.fromarray(np.zeros((16, 16), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(tmp_path / "images" / "s.tif", save_all=True, append_images=frames[1:])
    (tmp_path / "images" / "s.png").unlink()
    with pytest.raises(ValueError, match=r"s.tif holds 3 frames; save one image per file"):
        data.mask_folder(tmp_path, size=16)


def test_rand_f_by_hand():
    # two true cells (left and right of a membrane column); a perfect prediction scores 1
    truth = torch.zeros(1, 4, 5)
    truth[..., 2] = 1
    assert sg.rand_f(truth.bool(), truth) == pytest.approx(1.0)
    # a prediction that merges the two cells (no membrane): 16 inside pixels, 8 per true cell, all
    # in one region
    # p = [8/16, 8/16] in one column: sum p^2 = 0.5; a = [0.5, 0.5]: sum a^2 = 0.5; b = [1]: sum b^2
    # = 1
    merged = torch.zeros(1, 4, 5, dtype=torch.bool)
    assert sg.rand_f(merged, truth) == pytest.approx(2 * 0.5 / (0.5 + 1))
    # a prediction that splits the left cell in two by a membrane row: the left cell's 8 pixels go 2
    # to the
    # membrane, 2 and 4 to two regions ... counted by hand below
    split = truth.bool().clone()
    # membrane across the left cell at row 1: left pixels: row 0 (2) | row 1 (2, membrane) | rows
    # 2-3 (4)
    split[0, 1, :2] = True
    # (left, top) (left, membrane) (left, bottom) (right, right)
    p = torch.tensor([2, 2, 4, 8]) / 16
    a = torch.tensor([8, 8]) / 16
    # membrane region, top, bottom, right: each meets one true cell only
    b = torch.tensor([2, 2, 4, 8]) / 16
    assert sg.rand_f(split, truth) == pytest.approx(
        float(2 * (p ** 2).sum() / ((a ** 2).sum() + (b ** 2).sum())))
    scores = sg.scores(torch.stack([truth.bool(), merged]), torch.stack([truth, truth]))
    assert scores["rand_f"] == pytest.approx((1 + 2 * 0.5 / 1.5) / 2)


def test_elastic_deformation_keeps_masks_on_their_images():
    g = torch.Generator().manual_seed(5)
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    # a checkerboard
    mask = (((xx // 8) + (yy // 8)) % 2).float().reshape(1, 1, 64, 64).repeat(3, 1, 1, 1)
    still_x, still_y = sd.elastic_deform(mask.clone(), mask.clone(), g, sigma=0.0)
    # no displacement: the identity
    assert torch.equal(still_y, mask) and torch.allclose(still_x, mask, atol=1e-5)
    image, labels = sd.elastic_deform(mask.clone(), mask.clone(), torch.Generator().manual_seed(1),
                                      sigma=4.0)
    again = sd.elastic_deform(mask.clone(), mask.clone(), torch.Generator().manual_seed(1),
                              sigma=4.0)
    # the same draw, the same field
    assert torch.equal(image, again[0]) and torch.equal(labels, again[1])
    assert set(labels.unique().tolist()) <= {0.0, 1.0}
    assert (labels != mask).float().mean() > 0.05  # it moved
    # the image is the mask drawn in grey: thresholded, the warped image is the warped mask but for
    # edge pixels
    assert ((image > 0.5) == (labels > 0.5)).float().mean() > 0.97


def test_isbi_split_adds_deformed_copies_of_the_training_slices():
    plain_tr, plain_te = sd.isbi_split(size=64, train_slices=4, tile=32)
    more_tr, more_te = sd.isbi_split(size=64, train_slices=4, tile=32, elastic_copies=2)
    assert len(more_tr) == 3 * len(plain_tr) and torch.equal(more_tr.tensors[0][:len(plain_tr)],
                                                             plain_tr.tensors[0])
    assert (torch.equal(more_te.tensors[0], plain_te.tensors[0])
            and "2 elastic copies" in more_tr.description)
    with pytest.raises(ValueError, match="elastic_copies=-1 is not allowed"):
        sd.isbi_split(size=64, train_slices=4, tile=32, elastic_copies=-1)


def test_step_times_interleave_the_variants_and_pair_them_by_round():
    models = {skip: UNet(1, 1, depth=2, base=4, skip=skip) for skip in ("concat", "add")}
    times = sg.step_times(models, torch.randn(2, 1, 16, 16), "cpu", rounds=3, min_run_time=0.001)
    assert set(times) == {"concat", "add"} and all(len(t) == 3 and min(t) > 0
                                                   for t in times.values())
    # the median of three per-round ratios
    by_hand = sorted(c / a for c, a in zip(times["concat"], times["add"]))[1]
    assert sg.time_ratio(times, "concat", "add") == pytest.approx(by_hand)
    assert sg.time_ratio({"a": [2.0, 4.0, 9.0], "b": [1.0, 1.0, 3.0]}, "a",
                         "b") == pytest.approx(3.0)
