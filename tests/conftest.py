"""Shared fixtures: the repository root and one smoke-profile run of every notebook plus the report."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


@pytest.fixture(scope="session")
def smoke_reports(tmp_path_factory) -> Path:
    """Execute every notebook with the smoke profile through the runner, then build the report."""
    reports = tmp_path_factory.mktemp("reports")
    for nb in NOTEBOOKS:
        proc = subprocess.run([sys.executable, "-m", "skipanalysis.runner", str(nb), str(reports / nb.name),
                               "--profile", "smoke", "--device", "cpu", "--no-progress"],
                              capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, f"{nb.name} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    proc = subprocess.run([sys.executable, "-m", "skipanalysis.report", "html", "--reports", str(reports),
                           "--profile", "smoke", *[nb.stem for nb in NOTEBOOKS]], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return reports


def have_latex() -> bool:
    return shutil.which("xelatex") is not None and shutil.which("pandoc") is not None
