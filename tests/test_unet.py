"""Notebook 06's pieces: the U-Net variants, the metrics on hand-made masks, the segmentation generator."""

import pytest
import torch

from skipanalysis import data, segmentation as sg
from skipanalysis.models import UNet


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
    # concat widens each decoder stage's first 3x3 conv input from w to 2w: 9*w*w extra weights per stage
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
    assert sg.boundary_f(b, a, tol=1).item() == 1.0  # every boundary pixel within 1 px of the other's
    assert sg.boundary_f(b, a, tol=0).item() == pytest.approx(0.5)


def test_category_iou_perfect_prediction():
    ds = data.segmentation_shapes(4, 16, max_width=2, seed=1)
    _, masks, cats = ds.tensors
    df = sg.category_iou(masks > 0.5, masks, cats, data.segmentation_categories(2))
    present = df[df.pixels > 0]
    assert (present.iou == 1.0).all()


def test_generator_deterministic_and_masks_match_drawings():
    a = data.segmentation_shapes(6, 16, seed=3)
    b = data.segmentation_shapes(6, 16, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.tensors, b.tensors))
    _, masks, cats = a.tensors
    assert torch.equal(masks[:, 0] > 0, cats > 0)
    assert not torch.equal(a.tensors[0], data.segmentation_shapes(6, 16, seed=4).tensors[0])


def test_drawing_primitives_by_hand():
    disc = data.draw_ellipse(9, (4, 4), (2, 2))
    assert disc.sum().item() == 13  # lattice points with x^2 + y^2 <= 4
    line = data.draw_curve(9, (4, 1), (4, 4), (4, 7), width=1)  # straight horizontal, 1 px wide
    assert line.sum().item() == 7 and line[4, 1:8].all()
    thick = data.draw_curve(9, (4, 1), (4, 4), (4, 7), width=3)
    # radius 1.5: rows 3-5; the caps reach one column past each end, diagonals included (sqrt(2) <= 1.5)
    assert thick[3:6, 0:9].all() and thick.sum().item() == 3 * 9


def test_bad_segmentation_parameters():
    with pytest.raises(ValueError, match="at least 16 px"):
        data.segmentation_shapes(2, 8)
