"""Where a result came from, and writing it safely: git commit, package versions, atomic file
writes.

Every file the project writes for others to read (claim books, figures, the paper, hardware files,
the shipped data archives) goes through ``atomic_path``: it is written under a temporary name in the
same folder and renamed into place, so a crash or an interrupted run never leaves half a file where
a reader (or make) would take it as done.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "torchvision", "numpy", "pandas", "scipy", "matplotlib", "seaborn",
            "papermill", "nbconvert",
            "nbformat", "fvcore", "tqdm", "pyyaml", "latex2mathml", "skipanalysis")


def git_commit(repo: str | os.PathLike = ".") -> str:
    """The current git commit (with ``+dirty`` when tracked files have changes), or ``unknown``."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             timeout=10)
        if sha.returncode:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed version of each package in ``names`` (``not installed`` when absent)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _default_mode() -> int:
    """0o666 minus the umask: what a plain open() would give (mkstemp's files are private,
    0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on failure remove
    it.

    ``mode``: the file's permissions (default: what a plain ``open()`` would give under the current
    umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode() if mode is None else mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def write_between(path: str | os.PathLike, begin: str, end: str, text: str) -> bool:
    """Put ``text`` between the marks ``begin`` and ``end`` of the text file ``path`` (atomically,
    the marks kept); False, and nothing written, when the file or either mark is missing."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if begin not in old or end not in old.split(begin, 1)[1]:
        return False
    head, rest = old.split(begin, 1)
    write_atomic(path, f"{head}{begin}\n{text}\n{end}{rest.split(end, 1)[1]}")
    return True


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON (with a final newline) to ``path`` atomically."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays, tuples and NaN to plain JSON values."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays/scalars, torch tensors
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                 text=True,
                                 timeout=5)
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def machine_line() -> str:
    """This machine in one line for a timing table: CPU model, cores and memory (no torch
    import)."""
    mem = memory_bytes()
    return ", ".join([cpu_model() or platform.machine(), f"{os.cpu_count()} cores"]
                     + ([f"{mem / 2**30:.0f} GiB"] if mem else []))
