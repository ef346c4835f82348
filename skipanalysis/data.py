"""Datasets: real ones first (shipped subsets, the full CIFAR-10), procedural ones for controlled
runs.

Real data, offline:
- ``cifar10_subset``: the class-balanced CIFAR-10 subset shipped in ``data/`` (10,000 train / 2,000
  test JPEG images; built by ``skipanalysis.subsets``, provenance in ``data/README.md``); the quick
  profile's images.
- ``cifar10``: the full CIFAR-10 (Krizhevsky 2009) from ``CIFAR10_DIR`` (torchvision's batch format
  or an ImageFolder) or torchvision's download into ``data/datasets/``.
- ``isbi2012``: the 30 labelled ISBI 2012 EM slices (U-Net's data) shipped in ``data/``.
- ``image_folder``: a user's own images, one sub-folder per class.
- ``load_classification``: one entry point for the notebooks; every set it returns carries a
  ``description`` naming data set, source, sizes and resolution.

Procedural data, generated from a seed (the same tensors on any machine), for smoke runs and for
controlled experiments that need a knob real data lack:
- ``texture_classification``: oriented gratings with a distractor and noise.
- ``segmentation_shapes``: curves, blobs and regions of controlled fineness.
- ``reversal_task``: token sequences whose targets need long-range mixing.
- ``local_task``: its control, token sequences whose targets need the previous token only.

Real text (notebook 05's masked-character modelling, ``text_task``) is in
``skipanalysis.masked_text``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from .params import DATASETS
from .subsets import CIFAR10_CLASSES, read_imagefolder_members
from .tasks import texture_classification

DATA_ROOT = Path(__file__).resolve().parent.parent / "data" / "datasets"


def train_test_split(data: TensorDataset, n_test: int) -> tuple[TensorDataset, TensorDataset]:
    """Split the last ``n_test`` examples off as a held-out set (the data are already shuffled)."""
    tensors = data.tensors
    n = len(tensors[0])
    if not 0 < n_test < n:
        raise ValueError(f"n_test={n_test!r}: must be between 1 and {n - 1}")
    return TensorDataset(*(t[:-n_test] for t in tensors)), TensorDataset(
        *(t[-n_test:] for t in tensors))


REPO_DATA = Path(__file__).resolve().parent.parent / "data"
SHIPPED_CIFAR10 = REPO_DATA / "cifar10-subset.tar.gz"
SHIPPED_ISBI = REPO_DATA / "isbi2012-membranes.tar.gz"
CIFAR10_ENV = "CIFAR10_DIR"
# Sizes of the shipped CIFAR-10 subset (see skipanalysis.subsets and data/README.md).
SHIPPED_TRAIN, SHIPPED_TEST = 10_000, 2_000


class LabelledData(TensorDataset):
    """A ``TensorDataset`` that also says what it holds (data set, source, sizes, resolution).

    ``description`` is the sentence a claim's evidence quotes, e.g. ``"CIFAR-10 (JPEG export),
    shipped class-balanced subset: 5,000 train / 1,000 test images, 16 px"``.
    """

    def __init__(self, *tensors: torch.Tensor, description: str = "") -> None:
        super().__init__(*tensors)
        self.description = description


def describe(data: TensorDataset) -> str:
    """The data description of a ``LabelledData`` (an empty string for a plain
    ``TensorDataset``)."""
    return getattr(data, "description", "")


def _decode_images(blobs: list[bytes]) -> torch.Tensor:
    """Decode encoded images (JPEG, PNG) into a uint8 tensor ``(n, 3, H, W)``."""
    import io

    import numpy as np
    from PIL import Image

    arrs = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=np.uint8) for b in blobs]
    sizes = {a.shape for a in arrs}
    if len(sizes) != 1:
        raise ValueError(
            f"images of different sizes {sorted(sizes)[:3]}: resize them to one size first")
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()


def _imagefolder_tensors(members: dict[tuple[str, str], list[tuple[str, bytes]]], split: str,
                         where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of one split of ``{(split, class): [(name, bytes)]}``, classes in
    CIFAR-10's order."""

    classes = sorted(c for s, c in members if s == split)
    if not classes:
        raise ValueError(f"{where} has no {split}/<class>/ folders")
    order = list(CIFAR10_CLASSES) if set(classes) == set(CIFAR10_CLASSES) else classes
    blobs, labels = [], []
    for label, cls in enumerate(order):
        for _, data in sorted(members[(split, cls)]):
            blobs.append(data)
            labels.append(label)
    return _decode_images(blobs), torch.tensor(labels, dtype=torch.long)


def cifar10_subset(
    archive: str | os.PathLike | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The shipped class-balanced CIFAR-10 subset: ``{"train": (x uint8, y), "test": (x uint8,
    y)}``.

    Decoded once per archive content: the tensors are kept in ``.cache/`` beside the archive
    (joblib.Memory, keyed by the archive's sha256), so a re-executed notebook reads them instead of
    decoding 12,000 JPEGs again.

    Raises:
        ValueError: the archive is missing (naming the file and ``make data``).
    """
    archive = Path(archive) if archive else SHIPPED_CIFAR10
    if not archive.is_file():
        raise ValueError(f"the shipped CIFAR-10 subset {archive} is missing; rebuild it with `make "
                         "data` (needs the archives of ../shared/datasets) or restore it with git "
                         "checkout")
    return _decoded(_decode_subset, archive)


def _decode_subset(archive: str, sha256: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:

    members = read_imagefolder_members(Path(archive))
    return {split: _imagefolder_tensors(members, split, archive) for split in ("train", "test")}


def _decoded(decode, archive: Path):
    """``decode(str(archive), sha256 of its bytes)``, through a joblib.Memory cache in ``archive``'s
    folder's ``.cache/`` (the hash is part of the key: a rebuilt archive is decoded again); uncached
    where that folder cannot be written."""
    import hashlib

    import joblib

    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    cache = archive.parent / ".cache"
    try:
        cache.mkdir(exist_ok=True)
    except OSError:
        return decode(str(archive), sha)
    return joblib.Memory(cache, verbose=0).cache(decode, ignore=["archive"])(str(archive), sha)


def cifar10(train: bool = True, root: str | os.PathLike | None = None, download: bool = True
            ) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The full CIFAR-10 split as ``(x uint8 (n,3,32,32), y, source)``.

    Where it comes from, in order:
    1. ``root`` or the environment variable ``CIFAR10_DIR``: a folder in
       torchvision's batch format (``cifar-10-batches-py/`` inside it, or the
       folder itself), or an ImageFolder with ``train/<class>/`` and
       ``test/<class>/`` (read as it is, no checksums).
    2. torchvision's CIFAR-10 under ``data/datasets/cifar10``, downloaded there
       when the machine is online.

    Raises:
        RuntimeError: none of these is available, in one line naming
            ``CIFAR10_DIR`` and the fix.
    """
    import torchvision

    given = root or os.environ.get(CIFAR10_ENV)
    if given:
        folder = Path(given)
        if (folder / "train").is_dir() and (folder / "test").is_dir():

            x, y = _imagefolder_tensors(read_imagefolder_members(folder), "train" if train
                                        else "test", str(folder))
            return x, y, f"ImageFolder {folder}"
        if folder.name == "cifar-10-batches-py":
            folder = folder.parent
        if not (folder / "cifar-10-batches-py").is_dir():
            raise RuntimeError(
                f"{CIFAR10_ENV}={given} holds neither cifar-10-batches-py/ (torchvision's batch "
                               "format) nor train/ and test/ class folders (an ImageFolder)")
        ds = torchvision.datasets.CIFAR10(str(folder), train=train, download=False)
        return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(
            ds.targets), \
            f"torchvision batches {folder}"
    folder = DATA_ROOT / "cifar10"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        ds = torchvision.datasets.CIFAR10(str(folder), train=train, download=download)
    except Exception as exc:  # offline: URLError, or torchvision's "Dataset not found"
        raise RuntimeError(
            f"the full CIFAR-10 is not available ({type(exc).__name__}): set {CIFAR10_ENV} to a "
            "local copy (torchvision's cifar-10-batches-py or an ImageFolder with train/ and "
            f"test/), or run once online to download it into {folder}; the shipped subset covers "
            f"n_train <= {SHIPPED_TRAIN:,} and n_test <= {SHIPPED_TEST:,}") from exc
    return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets), \
        f"torchvision {folder}"


def image_folder(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """A user's own images, one sub-folder per class (torchvision's ``ImageFolder``), as uint8
    tensors."""
    import numpy as np
    import torchvision

    path = Path(path)
    if not path.is_dir():
        raise ValueError(
            f"image folder {path} does not exist; expected <path>/<class>/<image files>")
    ds = torchvision.datasets.ImageFolder(str(path))
    arrs, labels = [], []
    for img, label in ds:
        arrs.append(torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(
            2, 0, 1))
        labels.append(label)
    if len({a.shape for a in arrs}) != 1:
        raise ValueError(f"{path}: images differ in size; give them one size")
    return torch.stack(arrs), torch.tensor(labels, dtype=torch.long)


def _resize(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 images to float in [0, 1] at ``size`` x ``size`` (antialiased bilinear when the size
    changes)."""
    import torch.nn.functional as F

    out = []
    for i in range(0, len(x), chunk):
        part = x[i:i + chunk].float() / 255
        if part.shape[-1] != size or part.shape[-2] != size:
            part = F.interpolate(part, size=(size, size), mode="bilinear", align_corners=False,
                                 antialias=True)
        out.append(part)
    return torch.cat(out)


def balanced_take(labels: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``n`` examples drawn at random with class counts as equal as possible (differ by
    at most 1)."""
    if not 0 < n <= len(labels):
        raise ValueError(f"n={n!r}: must be between 1 and {len(labels)}")
    perm = torch.randperm(len(labels), generator=generator)
    lab = labels[perm]
    rank = torch.zeros_like(lab)
    for c in lab.unique():
        where = lab == c
        rank[where] = torch.arange(int(where.sum()))
    # round robin over classes, in random order within each
    key = rank * (int(labels.max()) + 1) + lab
    return perm[torch.argsort(key, stable=True)[:n]]


def load_classification(dataset: str, n_train: int, n_test: int, image_size: int = 16,
                        seed: int = 0,
                        path: str | os.PathLike | None = None) -> tuple[LabelledData, LabelledData]:
    """Train and test sets for a classification notebook, on the CPU, each with a ``description``.

    Args:
        dataset: ``cifar10`` (real images), ``texture`` (procedural, for smoke runs and
            controlled experiments) or ``folder`` (``path``/<class>/<images>, split by ``seed``).
        n_train, n_test: sizes; drawn class-balanced from the source at random by ``seed``.
            For ``cifar10`` 0 means the whole split.
        image_size: side in pixels (images are resized with antialiasing when it differs).
        path: the image folder, or a local CIFAR-10 copy (else ``CIFAR10_DIR``).

    ``cifar10`` reads the subset shipped in ``data/`` when ``n_train <= 10,000``,
    ``n_test <= 2,000`` and neither ``path`` nor ``CIFAR10_DIR`` names another copy;
    otherwise the full CIFAR-10 (see ``cifar10``). Real images get He et al.'s
    per-pixel mean subtraction (the training set's mean image).
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset={dataset!r} is not allowed; choose one of {', '.join(DATASETS)}")
    if dataset == "texture":
        tr, te = train_test_split(texture_classification(n_train + n_test, image_size, seed=seed),
                                  n_test)
        what = (f"procedural texture gratings (controlled, not real data): {n_train:,} train / "
                f"{n_test:,} test, {image_size} px")
        return LabelledData(*tr.tensors, description=what), LabelledData(*te.tensors,
                                                                         description=what)
    g = torch.Generator().manual_seed(seed)
    if dataset == "cifar10":
        shipped = not path and not os.environ.get(CIFAR10_ENV) and 0 < n_train <= SHIPPED_TRAIN \
            and 0 < n_test <= SHIPPED_TEST
        if shipped:
            sets = cifar10_subset()
            (xtr, ytr), (xte, yte) = sets["train"], sets["test"]
            source = "CIFAR-10 (JPEG export), shipped class-balanced subset"
        else:
            xtr, ytr, src = cifar10(True, root=path)
            xte, yte, _ = cifar10(False, root=path)
            source = f"CIFAR-10 ({src})"
        tr_idx = balanced_take(ytr, n_train, g) if n_train else torch.arange(len(ytr))
        te_idx = balanced_take(yte, n_test, g) if n_test else torch.arange(len(yte))
        xtr, ytr, xte, yte = xtr[tr_idx], ytr[tr_idx], xte[te_idx], yte[te_idx]
    else:
        if not path:
            raise ValueError(
                "dataset='folder' needs data_path=<folder with one sub-folder per class>")
        x, y = image_folder(path)
        if n_train + n_test > len(x):
            raise ValueError(
                f"n_train + n_test = {n_train + n_test} but {path} holds only {len(x)} images")
        order = torch.randperm(len(x), generator=g)
        x, y = x[order], y[order]
        xtr, ytr, xte, yte = (x[:n_train], y[:n_train], x[n_train:n_train + n_test],
                              y[n_train:n_train + n_test])
        source = f"image folder {path}"
    xtr, xte = _resize(xtr, image_size), _resize(xte, image_size)
    mean = xtr.mean(0, keepdim=True)
    what = f"{source}: {len(xtr):,} train / {len(xte):,} test images, {image_size} px"
    return LabelledData(xtr - mean, ytr, description=what), LabelledData(xte - mean, yte,
                                                                         description=what)


def isbi2012(archive: str | os.PathLike | None = None, size: int = 512) -> LabelledData:
    """The 30 labelled ISBI 2012 EM slices shipped in ``data/`` (Cardona et al. 2010; U-Net's data).

    Args:
        archive: the ``isbi2012-membranes.tar.gz`` to read (default: the shipped one).
        size: side in pixels; the 512 px slices are resized with antialiasing (masks by nearest
            neighbour after the same resize of the grey values, thresholded at 0.5).

    Returns:
        ``LabelledData(images (30,1,S,S) float32 in [0,1], masks (30,1,S,S) float32)``, slice
        ``i`` at index ``i``; mask 1 marks membrane (the label's black pixels), 0 cell interior.
    """
    import tarfile

    archive = Path(archive) if archive else SHIPPED_ISBI
    if not archive.is_file():
        raise ValueError(
            f"the ISBI 2012 archive {archive} is missing; rebuild it with `make data` or restore "
            "it with git checkout")
    blobs: dict[tuple[str, int], bytes] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for m in tar:
            p = Path(m.name)
            if m.isfile() and p.suffix == ".png" and p.parent.name in ("image", "label"):
                blobs[(p.parent.name, int(p.stem))] = tar.extractfile(m).read()
    n = len([k for k in blobs if k[0] == "image"])
    images = _decode_images([blobs[("image", i)] for i in range(n)])[:, :1].float() / 255
    labels = _decode_images([blobs[("label", i)] for i in range(n)])[:, :1].float() / 255
    images, masks = _resize_pair(images, (labels < 0.5).float(), size)
    return LabelledData(images, masks,
                        description=f"ISBI 2012 EM membranes (Cardona et al. 2010): {n} labelled "
                                                   f"slices, {size} px")


IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


def _resize_pair(images: torch.Tensor, masks: torch.Tensor,
                 size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey values resized with antialiasing; masks through the same resize, thresholded at 0.5."""
    import torch.nn.functional as F

    if size == images.shape[-1]:
        return images, masks
    resize = lambda t: F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,  # noqa: E731
                                     antialias=True)
    return resize(images), (resize(masks) >= 0.5).float()


def mask_folder(path: str | os.PathLike, size: int = 256) -> LabelledData:
    """A user's own segmentation data: ``<path>/images/`` and ``<path>/masks/``, paired by file name
    (stem).

    Images are read as grey values in [0, 1] (8- or 16-bit grey, or RGB made grey); a mask pixel
    brighter than half of white is foreground (1), and a mask of 0 and 1 (as label tools save it) is
    read as such. Both are resized to ``size`` px as ``isbi2012`` resizes its slices. Every image
    needs a mask of its name and size, and all images one square size; otherwise a one-line error
    names the files.

    Returns:
        ``LabelledData(images (N,1,S,S), masks (N,1,S,S))`` in file-name order.
    """
    import numpy as np
    from PIL import Image

    path = Path(path)
    found = {}
    for sub in ("images", "masks"):
        folder = path / sub
        if not folder.is_dir():
            raise ValueError(
                f"segmentation folder {path}: {folder} is missing; expected {path}/images/ and "
                             f"{path}/masks/ with the same file names")
        found[sub] = {f.stem: f for f in sorted(folder.iterdir())
                      if f.suffix.lower() in IMAGE_SUFFIXES}
    images, masks = found["images"], found["masks"]
    if not images:
        raise ValueError(
            f"segmentation folder {path}/images has no images ({', '.join(IMAGE_SUFFIXES)})")
    unpaired = sorted(set(images) ^ set(masks))
    if unpaired:
        raise ValueError(
            f"segmentation folder {path}: {len(unpaired)} file(s) without a partner of the same "
            f"name in images/ or masks/, e.g. {', '.join(unpaired[:3])}")
    # values in [0, 1] whatever the bit depth (8- or 16-bit grey, RGB)
    def grey(f: Path) -> np.ndarray:
        img = Image.open(f)
        if getattr(img, "n_frames", 1) > 1:
            raise ValueError(
                f"segmentation folder {path}: {f.name} holds {img.n_frames} frames; save one image "
                             "per file")
        if img.mode in ("RGB", "RGBA", "P", "LA", "CMYK"):
            img = img.convert("L")
        a = np.asarray(img)
        if a.dtype == np.bool_ or a.dtype == np.uint8:
            top = 1 if a.dtype == np.bool_ else 255
        elif np.issubdtype(a.dtype, np.integer):  # 16-bit grey (Pillow's I;16 or I)
            top = 65535 if a.max() <= 65535 else np.iinfo(a.dtype).max
        else:  # float images: [0, 1] as they are, else scaled by their maximum
            top = 1.0 if a.max() <= 1 else float(a.max())
        return a.astype(np.float32) / top

    xs, ys = [], []
    for name in sorted(images):
        x, y = grey(images[name]), grey(masks[name])
        if 0 < y.max() <= 1 / 255 + 1e-6:
            y = y / y.max()  # a label mask of 0 and 1 (as label tools save it): 1 is foreground
        if x.shape != y.shape:
            raise ValueError(
                f"segmentation folder {path}: {name}'s image is {x.shape[1]}x{x.shape[0]} px but "
                f"its mask {y.shape[1]}x{y.shape[0]}; give each pair one size")
        if x.shape[0] != x.shape[1] or (xs and x.shape != xs[0].shape):
            raise ValueError(f"segmentation folder {path}: {name} is {x.shape[1]}x{x.shape[0]} px; "
                             "every image must be square and of one size "
                             f"({xs[0].shape[1] if xs else x.shape[0]} px): crop them")
        xs.append(x)
        ys.append((y > 0.5).astype(np.float32))
    if not any(y.any() for y in ys):
        raise ValueError(
            f"segmentation folder {path}: every mask is empty (no pixel above half of white); "
                         "foreground must be bright")
    x = torch.from_numpy(np.stack(xs))[:, None]
    y = torch.from_numpy(np.stack(ys))[:, None]
    x, y = _resize_pair(x, y, size)
    return LabelledData(
        x, y, description=f"image/mask folder {path.name}: {len(x)} labelled images, {size} px")


def to_device(data: TensorDataset, device: torch.device | str) -> LabelledData:
    """Move a ``TensorDataset`` onto ``device`` once, so training never copies batches (the GPU
    path)."""
    return LabelledData(*(t.to(device) for t in data.tensors), description=describe(data))
