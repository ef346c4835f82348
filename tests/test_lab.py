"""`make lab`: JupyterLab serves the notebooks with the project's kernel, as root too, and a
notebook runs in it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT

PYTHON = ROOT / ".venv" / "bin" / "python"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.mark.skipif(not PYTHON.exists(),
                    reason="make lab runs from the project's .venv (make setup)")
def test_make_lab_serves_the_notebooks_and_the_project_kernel(tmp_path):
    port, token = _free_port(), "skipanalysis-test"
    args = (
        f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token} "
        "--ServerApp.port_retries=0")
    log = open(tmp_path / "lab.log", "w")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    lab = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"], cwd=ROOT,
                           stdout=log,
                           stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}/api"
    status: dict = {}
    try:
        # JupyterLab starts in a few seconds; a refusal to run (as root) ends the process
        for _ in range(120):
            if lab.poll() is not None:
                break
            try:
                status = _get(f"{base}/status?token={token}")
                break
            except OSError:
                time.sleep(0.5)
        assert lab.poll() is None, f"make lab stopped: {(tmp_path / 'lab.log').read_text()[-2000:]}"
        assert "started" in status
        names = {c["name"] for c in _get(f"{base}/contents?token={token}")["content"]}
        # Lab opens on notebooks/
        assert {"01_degradation.ipynb", "06_unet_skips.ipynb", "params"} <= names
        specs = _get(f"{base}/kernelspecs?token={token}")["kernelspecs"]
        assert specs["skipanalysis"]["spec"]["display_name"] == "Python (skipanalysis)"
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)
        log.close()
    # the kernel Lab offers runs a notebook as it stands: its figures are written
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "skipanalysis.pipeline.runner",
                           str(ROOT / "notebooks" / "03_equivalence.ipynb"),
                           str(out / "03_equivalence.ipynb"), "--profile", "smoke", "--device",
                           "cpu", "--no-progress",
                           "--kernel", "skipanalysis"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "SKIPANALYSIS_RUNS": str(tmp_path / "runs"),
                               "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    figures = Path(out / "figures")
    assert sorted(figures.glob("03_equivalence-*.png")), (
        "no figures from the notebook run in the project's kernel")
