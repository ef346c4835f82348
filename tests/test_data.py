"""The shipped real data: checksums, reproducible building, and the loader's three CIFAR-10
sources."""

from __future__ import annotations

import pickle
import re
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from skipanalysis import data, subsets, tasks

from conftest import ROOT

SHARED = ROOT.parent / "shared" / "datasets"
README = (ROOT / "data" / "README.md").read_text(encoding="utf-8")


def listed_sha256(name: str) -> str:
    """The checksum data/README.md gives for a shipped file (an independent record of what was
    built)."""
    m = re.search(rf"`{re.escape(name)}`[^\n]*?([0-9a-f]{{64}})", README)
    assert m, f"data/README.md lists no sha256 for {name}"
    return m.group(1)


@pytest.mark.parametrize("name", ["cifar10-subset.tar.gz", "isbi2012-membranes.tar.gz"])
def test_shipped_files_match_their_listed_checksums(name):
    assert subsets.sha256(ROOT / "data" / name) == listed_sha256(name)


def test_shipped_data_stay_within_15_mb():
    total = sum((ROOT / "data" / n).stat().st_size
                for n in ("cifar10-subset.tar.gz", "isbi2012-membranes.tar.gz"))
    assert total <= 15e6


def test_shipped_subset_is_class_balanced_and_split_by_source():
    with tarfile.open(ROOT / "data" / "cifar10-subset.tar.gz") as tar:
        names = [m.name for m in tar if m.isfile()]
    counts = {}
    for n in names:
        _, split, cls, _ = n.split("/")
        counts[(split, cls)] = counts.get((split, cls), 0) + 1
    assert {counts[("train", c)] for c in subsets.CIFAR10_CLASSES} == {subsets.TRAIN_PER_CLASS}
    assert {counts[("test", c)] for c in subsets.CIFAR10_CLASSES} == {subsets.TEST_PER_CLASS}


@pytest.mark.skipif(not (SHARED / "cifar10-jpeg.tar.gz").exists(),
                    reason="../shared/datasets is not here")
def test_subset_script_rebuilds_the_shipped_bytes(tmp_path):
    assert subsets.main(["--source", str(SHARED), "--out", str(tmp_path)]) == 0
    for name in ("cifar10-subset.tar.gz", "isbi2012-membranes.tar.gz"):
        assert subsets.sha256(tmp_path / name) == subsets.sha256(ROOT / "data" / name)
    # the source archive's checksum as its own README gives it
    assert subsets.sha256(SHARED / "cifar10-jpeg.tar.gz") == \
        "8d425d830249859a729686327ad715494bbc8e2a9bd0e7743e7c37c3e9f22cf2"


def test_subset_script_names_a_missing_source(tmp_path, capsys):
    assert subsets.main(
        ["--source", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_balanced_take_counts_and_determinism():
    labels = torch.arange(1000) % 10
    a = data.balanced_take(labels, 37, torch.Generator().manual_seed(1))
    b = data.balanced_take(labels, 37, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and len(set(a.tolist())) == 37
    counts = torch.bincount(labels[a], minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 37


def test_quick_sizes_read_the_shipped_subset(monkeypatch):
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    tr, te = data.load_classification("cifar10", 200, 50, image_size=16, seed=3)
    assert tr.tensors[0].shape == (200, 3, 16, 16) and te.tensors[0].shape == (50, 3, 16, 16)
    assert torch.bincount(tr.tensors[1], minlength=10).tolist() == [20] * 10
    assert ("shipped" in tr.description and "JPEG export" in tr.description
            and "16 px" in tr.description)
    assert tr.tensors[0].mean(0).abs().max() < 1e-5  # He et al.'s per-pixel mean was subtracted
    again, _ = data.load_classification("cifar10", 200, 50, image_size=16, seed=3)
    assert torch.equal(tr.tensors[0], again.tensors[0])


def test_shipped_pixels_match_a_direct_decode():
    """The loader's pixels equal PIL's decode of the same JPEG read straight from the archive."""
    sets = data.cifar10_subset()
    x, y = sets["test"]
    with tarfile.open(ROOT / "data" / "cifar10-subset.tar.gz") as tar:
        raw = tar.extractfile("cifar10-subset/test/bird/0000.jpg").read()
    import io

    ref = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
    first_bird = int((y == subsets.CIFAR10_CLASSES.index("bird")).nonzero()[0])
    assert np.array_equal(x[first_bird].permute(1, 2, 0).numpy(), ref)


def _write_imagefolder(root, per_class=3, size=32):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in subsets.CIFAR10_CLASSES:
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
                    root / split / cls / f"{i}.png")


def test_cifar10_dir_as_an_imagefolder(tmp_path, monkeypatch):
    _write_imagefolder(tmp_path)
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path))
    tr, te = data.load_classification("cifar10", 20, 10, image_size=32, seed=0)
    assert tr.tensors[0].shape == (20, 3, 32, 32) and str(tmp_path) in tr.description
    x, y, _ = data.cifar10(train=False)
    assert x.shape == (30, 3, 32, 32) and x.dtype == torch.uint8 and torch.bincount(y).tolist() == [
        3] * 10
    img = np.asarray(Image.open(tmp_path / "test" / "airplane" / "0.png"))
    assert np.array_equal(x[0].permute(1, 2, 0).numpy(), img)


def test_cifar10_dir_in_torchvision_batch_format(tmp_path, monkeypatch):
    """A folder in torchvision's pickled batch format (checksums skipped: the pixels here are
    random)."""
    import torchvision

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    pixels = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        arr = rng.integers(0, 255, (4, 3072), dtype=np.uint8)
        pixels[name] = arr
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": arr, "labels": [0, 1, 2, 3]}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": list(subsets.CIFAR10_CLASSES)}, fh)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path))
    x, y, src = data.cifar10(train=False)
    assert "torchvision batches" in src and y.tolist() == [0, 1, 2, 3]
    # CHW order, as the batches store it
    assert np.array_equal(x.reshape(4, -1).numpy(), pixels["test_batch"])
    x, _, _ = data.cifar10(train=True)
    assert x.shape == (20, 3, 32, 32)


def test_full_cifar10_offline_gives_one_line_naming_the_variable(tmp_path, monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    monkeypatch.setattr(data, "DATA_ROOT", tmp_path)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(RuntimeError) as err:
        data.load_classification("cifar10", 20_000, 100)
    msg = str(err.value)
    assert "CIFAR10_DIR" in msg and "\n" not in msg


def test_cifar10_dir_that_is_neither_format(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="neither cifar-10-batches-py"):
        data.cifar10()


def test_isbi2012_slices_and_masks():
    full = data.isbi2012()
    x, m = full.tensors
    assert x.shape == m.shape == (30, 1, 512, 512)
    assert set(m.unique().tolist()) == {0.0, 1.0}
    # membranes are a minority of pixels in these slices (about a fifth)
    assert 0.1 < m.mean() < 0.35
    small = data.isbi2012(size=128)
    assert small.tensors[0].shape == (30, 1, 128, 128)
    assert abs(small.tensors[1].mean() - m.mean()) < 0.05
    assert "ISBI 2012" in small.description


def test_texture_data_deterministic():
    a = tasks.texture_classification(50, 8, seed=4)
    b = tasks.texture_classification(50, 8, seed=4)
    c = tasks.texture_classification(50, 8, seed=5)
    assert torch.equal(a.tensors[0], b.tensors[0]) and torch.equal(a.tensors[1], b.tensors[1])
    assert not torch.equal(a.tensors[0], c.tensors[0])
    assert sorted(a.tensors[1].bincount().tolist()) == [5] * 10


def test_bad_data_parameters():
    with pytest.raises(ValueError, match="n=0"):
        tasks.texture_classification(0)
    with pytest.raises(ValueError, match="image folder"):
        data.image_folder("/nonexistent/folder")


def test_the_decoded_subset_is_cached_by_the_archive_content(tmp_path, monkeypatch):
    import shutil

    archive = tmp_path / "cifar10-subset.tar.gz"
    shutil.copy(ROOT / "data" / "cifar10-subset.tar.gz", archive)
    first = data.cifar10_subset(archive)
    assert (tmp_path / ".cache").is_dir()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data, "read_imagefolder_members", no_decoding)
    again = data.cifar10_subset(archive)  # from the cache: nothing decoded
    assert all(torch.equal(a, b) for s in ("train", "test") for a, b in zip(first[s], again[s]))
    # other bytes: another key, decoded again
    archive.write_bytes(archive.read_bytes()[:-1] + b"\0")
    with pytest.raises(AssertionError, match="decoded again"):
        data.cifar10_subset(archive)
