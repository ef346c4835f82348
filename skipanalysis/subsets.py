"""Build the small real data sets the repository ships, from the public archives.

The quick profile runs on real images offline, so the repository carries:

- ``data/cifar10-subset.tar.gz``: a class-balanced subset of CIFAR-10
  (Krizhevsky 2009) in torchvision's ImageFolder layout,
  ``cifar10-subset/{train,test}/<class>/NNNN.jpg``; train images come from the
  train split, test images from the test split. The images are the JPEG files
  of a public export, copied byte for byte (never re-encoded).
- ``data/isbi2012-membranes.tar.gz``: the 30 labelled ISBI 2012 EM training
  slices (Cardona et al. 2010; Ronneberger et al. 2015's U-Net data), copied
  as they are.

Both archives are written reproducibly (sorted members, zero times and owners,
no gzip time stamp), so the same inputs always give the same SHA-256, which
``data/README.md`` lists and ``tests/test_data.py`` checks.

Command line (``make data``)::

    python -m skipanalysis.subsets --source ../shared/datasets --out data

``--source`` is a folder holding ``cifar10-jpeg.tar.gz`` (or an unpacked
``cifar10-jpeg/`` folder, or any ImageFolder with ``train/`` and ``test/``)
and ``isbi2012-membranes.tar.gz``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import random
import shutil
import sys
import tarfile
from pathlib import Path

from .provenance import atomic_path

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")
CIFAR_ARCHIVE = "cifar10-jpeg.tar.gz"
ISBI_ARCHIVE = "isbi2012-membranes.tar.gz"
SUBSET_NAME = "cifar10-subset"
# Per class: 1,000 training images (10,000 in all) and 200 test images (2,000 in all).
TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
SUBSET_SEED = 0


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_imagefolder_members(source: Path) -> dict[tuple[str, str], list[tuple[str, bytes]]]:
    """``{(split, class): [(file name, bytes), ...]}`` from a tar.gz or a folder with ``train/`` and
    ``test/``."""
    found: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
    if source.is_file():
        with tarfile.open(source, "r:gz") as tar:
            for m in tar:
                parts = Path(m.name).parts
                if m.isfile() and len(parts) >= 3 and parts[-3] in ("train", "test"):
                    data = tar.extractfile(m).read()
                    found.setdefault((parts[-3], parts[-2]), []).append((parts[-1], data))
    else:
        for split in ("train", "test"):
            for cls_dir in sorted(p for p in (source / split).iterdir() if p.is_dir()):
                found[(split, cls_dir.name)] = [(f.name, f.read_bytes())
                                                for f in sorted(cls_dir.iterdir())
                                                if f.is_file()]
    return found


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes | None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    else:
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))


def _write_reproducible_targz(out: Path, members: list[tuple[str, bytes | None]]) -> None:
    """Write ``members`` (name, bytes or None for a folder), in the given order, as a byte-stable
    tar.gz."""
    with atomic_path(out, mode=0o644) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                   compresslevel=9) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for name, data in members:
                    _add_bytes(tar, name, data)


def build_cifar10_subset(source: str | os.PathLike, out: str | os.PathLike,
                         train_per_class: int = TRAIN_PER_CLASS,
                         test_per_class: int = TEST_PER_CLASS, seed: int = SUBSET_SEED) -> Path:
    """Write a class-balanced CIFAR-10 subset as a reproducible tar.gz in ImageFolder layout.

    From each class, ``train_per_class`` files of the train split and
    ``test_per_class`` of the test split are drawn without replacement by a
    ``random.Random(seed)`` shuffle of the sorted file names; they are renamed
    ``0000.jpg``, ``0001.jpg``, ... in draw order and copied byte for byte.

    Args:
        source: ``cifar10-jpeg.tar.gz``, or a folder with ``train/<class>/`` and ``test/<class>/``.
        out: the archive to write (its parent folder is created).

    Raises:
        ValueError: a missing source, a class missing from a split, or too few images in one.
    """
    source, out = Path(source), Path(out)
    if not source.exists():
        raise ValueError(
            f"CIFAR-10 source {source} does not exist; expected {CIFAR_ARCHIVE} or a folder "
                         "with train/<class>/ and test/<class>/")
    found = read_imagefolder_members(source)
    rng = random.Random(seed)
    members: list[tuple[str, bytes | None]] = [(f"{SUBSET_NAME}/", None)]
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        members.append((f"{SUBSET_NAME}/{split}/", None))
        for cls in CIFAR10_CLASSES:
            files = sorted(found.get((split, cls), []))
            if len(files) < per_class:
                raise ValueError(
                    f"{source}: {split}/{cls} holds {len(files)} images, the subset needs "
                    f"{per_class}")
            rng.shuffle(files)
            members.append((f"{SUBSET_NAME}/{split}/{cls}/", None))
            members += [(f"{SUBSET_NAME}/{split}/{cls}/{i:04d}.jpg", data) for i, (_, data) in
                        enumerate(files[:per_class])]
    _write_reproducible_targz(out, members)
    return out


def copy_isbi(source: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Copy the ISBI 2012 archive as it is, after checking it holds 30 image/label pairs."""
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise ValueError(f"ISBI 2012 source {source} does not exist; expected {ISBI_ARCHIVE}")
    with tarfile.open(source, "r:gz") as tar:
        names = {m.name for m in tar if m.isfile()}
    for i in range(30):
        for kind in ("image", "label"):
            if f"isbi2012-membranes/{kind}/{i}.png" not in names:
                raise ValueError(f"{source}: missing isbi2012-membranes/{kind}/{i}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skipanalysis.subsets",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="../shared/datasets",
                    help=f"folder holding {CIFAR_ARCHIVE} (or cifar10-jpeg/) and {ISBI_ARCHIVE}")
    ap.add_argument("--out", default="data", help="where the shipped archives go")
    args = ap.parse_args(argv)
    src, out = Path(args.source), Path(args.out)
    cifar = src / CIFAR_ARCHIVE if (src / CIFAR_ARCHIVE).exists() else src / "cifar10-jpeg"
    try:
        made = [build_cifar10_subset(cifar, out / f"{SUBSET_NAME}.tar.gz"),
                copy_isbi(src / ISBI_ARCHIVE, out / ISBI_ARCHIVE)]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in made:
        print(f"{p}  {p.stat().st_size / 1e6:.1f} MB  sha256 {sha256(p)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
