"""Shared fixtures: the repository root and one smoke-profile run of every notebook plus the
report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


@pytest.fixture(scope="session")
def smoke_reports(tmp_path_factory) -> Path:
    """Execute every notebook with the smoke profile through the runner, then build the report.

    Two notebooks run at a time (one torch thread each), as ``make -j2 report`` would on the 2-core
    machine the test budget is set for.
    """
    reports = tmp_path_factory.mktemp("reports")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           # a fresh run store: every run trains
           "SKIPANALYSIS_RUNS": str(tmp_path_factory.mktemp("runs"))}

    def run(nb: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "skipanalysis.pipeline.runner", str(nb), str(reports / nb.name),
                               "--profile", "smoke", "--device", "cpu", "--no-progress"],
                              capture_output=True, text=True, cwd=ROOT, env=env)

    from skipanalysis.params import SHARED

    # as make orders them: the notebooks that reuse another's runs (07, 02 reuse 01's) after the
    # rest
    later = [nb for nb in NOTEBOOKS if nb.stem in SHARED]
    for batch in ([nb for nb in NOTEBOOKS if nb not in later], later):
        with ThreadPoolExecutor(max_workers=2) as pool:
            for nb, proc in zip(batch, pool.map(run, batch)):
                assert proc.returncode == 0, (
                    f"{nb.name} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}")
    proc = subprocess.run(
        [sys.executable, "-m", "skipanalysis.pipeline.report", "html", "--reports", str(reports),
                           "--profile", "smoke", *[nb.stem for nb in NOTEBOOKS]],
                          capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return reports


def have_latex() -> bool:
    return shutil.which("xelatex") is not None and shutil.which("pandoc") is not None

