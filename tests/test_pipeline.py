"""The Makefile and the runner as a user meets them: caching, failures, bad input."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import ROOT


def _tiny_notebook(path: Path, body: str) -> None:
    params = new_code_cell(
        'profile = "quick"\ndevice = "auto"\nreport_dir = "../reports"\nvalue = 1')
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_code_cell("# title"), params, new_code_cell(body)])
    nb.cells[0] = nbformat.v4.new_markdown_cell("# A tiny notebook")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture()
def project(tmp_path):
    """A copy of the project whose notebooks are two tiny ones, so make's behaviour is quick to
    test."""
    for item in ("Makefile", "skipanalysis", "pyproject.toml"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    (tmp_path / "notebooks" / "params").mkdir(parents=True)
    for profile in ("smoke", "quick", "full"):
        (tmp_path / "notebooks" / "params" / f"{profile}.yaml").write_text("91_a:\n  value: 2\n")
    _tiny_notebook(tmp_path / "notebooks" / "91_a.ipynb", "print('a', value)")
    _tiny_notebook(tmp_path / "notebooks" / "92_b.ipynb", "print('b', value)")
    return tmp_path


def make(project, *args, env=None):
    e = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(project), "PDF": "no",
         **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.run(["make", "-C", str(project), *args], capture_output=True, text=True,
                          env=e)
    return proc, time.perf_counter() - t0


def test_make_report_caching_and_parallel(project):
    proc, _ = make(project, "-j2", "report", "PROFILE=smoke")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    smoke = project / "reports" / "smoke"
    assert (smoke / "91_a.ipynb").exists() and (smoke / "report.html").exists()
    assert (project / "reports" / "report.html").read_bytes() == (
        smoke / "report.html").read_bytes()
    out = nbformat.read(smoke / "91_a.ipynb", as_version=4)
    assert "a 2" in str(out.cells[-1].outputs)  # the profile's value reached the notebook
    # kernels talk over Unix sockets: no open port, no "running over TCP" warning
    if os.name == "posix":
        assert "without encryption" not in proc.stdout + proc.stderr
        # and no socket files left beside the notebooks
        assert not list((project / "notebooks").glob("kernel-*"))

    proc, seconds = make(project, "report", "PROFILE=smoke")
    assert proc.returncode == 0 and "running" not in proc.stdout and "assembling" not in proc.stdout
    assert seconds < 5

    time.sleep(1.1)
    (project / "notebooks" / "92_b.ipynb").touch()
    proc, _ = make(project, "report", "PROFILE=smoke")
    assert "[92_b] running" in proc.stdout and "[91_a] running" not in proc.stdout
    assert "assembling" in proc.stdout

    # a new profile runs everything, into its own folder
    proc, _ = make(project, "report", "PROFILE=quick")
    assert "[91_a] running" in proc.stdout and "[92_b] running" in proc.stdout
    assert (project / "reports" / "quick" / "91_a.ipynb").exists()
    reports = project / "reports"
    assert (reports / "report.html").read_bytes() == (
        reports / "quick" / "report.html").read_bytes()
    # ... and going back finds the smoke results still there
    proc, _ = make(project, "report", "PROFILE=smoke")
    assert proc.returncode == 0 and "running" not in proc.stdout
    assert (project / "reports" / "report.html").read_bytes() == (
        smoke / "report.html").read_bytes()


def test_make_reruns_only_the_notebooks_a_change_touches(project):
    _tiny_notebook(project / "notebooks" / "91_a.ipynb",
                   "from skipanalysis import stats\nprint('a', value)")
    assert make(project, "report", "PROFILE=smoke")[0].returncode == 0
    deps = (project / "reports" / "smoke" / ".deps.mk").read_text()
    assert "skipanalysis/stats.py" in deps.split("91_a.ipynb:")[1].splitlines()[0]
    time.sleep(1.1)
    (project / "skipanalysis" / "stats.py").touch()  # imported by 91_a only
    proc, _ = make(project, "report", "PROFILE=smoke")
    assert "[91_a] running" in proc.stdout and "[92_b] running" not in proc.stdout
    time.sleep(1.1)
    (project / "skipanalysis" / "segmentation.py").touch()  # imported by neither
    proc, _ = make(project, "report", "PROFILE=smoke")
    assert proc.returncode == 0 and "running" not in proc.stdout and "assembling" not in proc.stdout
    time.sleep(1.1)
    (project / "notebooks" / "params" / "smoke.yaml").write_text(
        "91_a:\n  value: 2\n92_b:\n  value: 5\n")
    proc, _ = make(project, "report", "PROFILE=smoke")  # only 92_b's section changed
    assert "[92_b] running" in proc.stdout and "[91_a] running" not in proc.stdout
    assert "b 5" in str(
        nbformat.read(project / "reports" / "smoke" / "92_b.ipynb", 4).cells[-1].outputs)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


def test_rejected_profile_or_device_changes_nothing(project):
    assert make(project, "report", "PROFILE=smoke")[0].returncode == 0
    before = _snapshot(project / "reports")
    for bad, message in (
        ("PROFILE=nonsense", "PROFILE=nonsense is not allowed; choose one of smoke, quick, full"),
                         ("DEVICE=gpu",
                          "DEVICE=gpu is not allowed; choose one of auto, cpu, cuda, cuda:N, mps, "
                          "xla")):
        proc, _ = make(project, "report", bad)
        assert proc.returncode != 0 and message in proc.stderr
    assert _snapshot(project / "reports") == before
    proc, _ = make(project, "report", "PROFILE=smoke")
    assert proc.returncode == 0 and "running" not in proc.stdout


def test_failed_notebook_leaves_no_target(project):
    proc, _ = make(project, "report", "PROFILE=smoke")
    assert proc.returncode == 0
    reports = project / "reports" / "smoke"
    good_html = (reports / "report.html").read_bytes()
    _tiny_notebook(project / "notebooks" / "93_fail.ipynb",
                   "raise RuntimeError('boom from the test')")
    proc, _ = make(project, "report", "PROFILE=smoke")
    assert proc.returncode != 0
    assert ("[93_fail] FAILED in cell" in proc.stderr
            and "RuntimeError: boom from the test" in proc.stderr)
    assert not (reports / "93_fail.ipynb").exists()
    assert (reports / "failed" / "93_fail.ipynb").exists()
    assert (reports / "report.html").read_bytes() == good_html
    assert not list(reports.glob(".staging/*"))
    # still failing: make does not take it as done
    proc, _ = make(project, "report", "PROFILE=smoke")
    assert "[93_fail] running" in proc.stdout and proc.returncode != 0


def test_bad_profile_and_device_stop_before_running(project):
    proc, _ = make(project, "report", "PROFILE=huge")
    assert proc.returncode != 0
    proc = subprocess.run([sys.executable, "-m", "skipanalysis.pipeline.runner",
                           str(project / "notebooks" / "91_a.ipynb"),
                           str(project / "x.ipynb"), "--profile", "huge"], capture_output=True,
                          text=True)
    assert (proc.returncode == 2
            and "PROFILE='huge' is not allowed; choose one of smoke, quick, full" in proc.stderr)
    proc = subprocess.run([sys.executable, "-m", "skipanalysis.pipeline.runner",
                           str(project / "notebooks" / "91_a.ipynb"),
                           str(project / "x.ipynb"), "--device", "gpu"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "DEVICE='gpu' is not allowed" in proc.stderr


def test_unknown_profile_parameter_is_named(project):
    (project / "notebooks" / "params" / "smoke.yaml").write_text("91_a:\n  valu: 2\n")
    proc = subprocess.run([sys.executable, "-m", "skipanalysis.pipeline.runner",
                           str(project / "notebooks" / "91_a.ipynb"),
                           str(project / "x.ipynb"), "--profile", "smoke"], capture_output=True,
                          text=True)
    assert (proc.returncode == 2 and "['valu']" in proc.stderr
            and "not defined in the notebook" in proc.stderr)


def test_parameter_override(project):
    nb, out = str(project / "notebooks" / "91_a.ipynb"), project / "out" / "91_a.ipynb"
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "skipanalysis.pipeline.runner", nb, str(out), "--no-progress", *a],
        capture_output=True, text=True)
    proc = run("-p", "valu=3")
    assert (proc.returncode == 2
            and "-p valu=... is not allowed for 91_a; it defines ['value']" in proc.stderr)
    assert not out.exists()
    assert run("-p", "value").returncode == 2
    proc = run("-p", "value=[3, 4]")
    assert proc.returncode == 0, proc.stderr
    assert "a [3, 4]" in "".join(o.get("text", "") for c in nbformat.read(out, 4).cells
                                 for o in c.get("outputs", []))


def test_notebook_validates_its_parameters():
    from skipanalysis.pipeline.notebook import setup

    with pytest.raises(ValueError,
                       match=r"parameter profile='fast' is not allowed; expected a string from"):
        setup("03_equivalence", profile="fast", device="cpu", report_dir="/tmp")
    with pytest.raises(ValueError,
                       match=r"parameter seed=-1 is not allowed; expected an integer >= 0"):
        setup("03_equivalence", profile="smoke", device="cpu", report_dir="/tmp", seed=-1)


def test_parallel_make_shares_the_cores_between_notebooks():
    from skipanalysis.pipeline.runner import threads_under_make

    assert threads_under_make({"MAKEFLAGS": " -j2 --jobserver-auth=3,4"}, cores=2) == 1
    assert threads_under_make({"MAKEFLAGS": "-j4 --jobserver-auth=3,4"}, cores=16) == 4
    # unlimited jobs
    assert threads_under_make({"MAKEFLAGS": " -j --jobserver-auth=3,4"}, cores=8) == 1
    assert threads_under_make({"MAKEFLAGS": ""}, cores=8) is None  # one job: torch's own default
    assert threads_under_make({"MAKEFLAGS": "-j1"}, cores=8) is None
    # the user's choice
    assert threads_under_make({"MAKEFLAGS": " -j2", "OMP_NUM_THREADS": "3"}, cores=8) is None


def test_a_serial_make_runs_every_notebook_alone():
    from skipanalysis.pipeline.runner import serial_make

    # what GNU make 4.3 exports to a serial recipe
    assert serial_make({"MAKELEVEL": "1", "MAKEFLAGS": ""})
    assert serial_make({"MAKELEVEL": "1", "MAKEFLAGS": "-j1"})
    assert not serial_make({"MAKELEVEL": "1", "MAKEFLAGS": " -j2 --jobserver-auth=fifo:/tmp/x"})
    assert not serial_make({"MAKELEVEL": "1", "MAKEFLAGS": " -j --jobserver-auth=3,4"})
    assert not serial_make({"MAKEFLAGS": ""})  # not under make: the runner's own flag decides


def test_the_lead_and_the_timing_notebook_run_alone_with_every_core(project, monkeypatch):
    """Under make -j2 LEAD (01 in the project) runs first and ALONE (04) last, each by itself with
    every core."""
    threads = "import os; print('threads', os.environ.get('OMP_NUM_THREADS') or 'all')"
    (project / "notebooks" / "94_d.ipynb").write_text("{}")
    for name, body in (("92_b", "import time; time.sleep(2); open('../b.done', 'w').write('')"),
                       ("93_c", threads),
                       ("91_a", f"{threads}; print('others done', os.path.exists('../b.done'))"),
                       ("94_d", f"{threads}; print('lead done', os.path.exists('../b.done'))")):
        _tiny_notebook(project / "notebooks" / f"{name}.ipynb", body)
    # as in a user's shell: the runner shares the cores out
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    proc, _ = make(project, "-j2", "report", "PROFILE=smoke", "ALONE=91_a", "LEAD=94_d")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def printed(name):
        return str(nbformat.read(project / "reports" / "smoke" / f"{name}.ipynb",
                                 as_version=4).cells[-1].outputs)

    assert "others done True" in printed("91_a") and "threads all" in printed("91_a"), printed(
        "91_a")
    # its share
    assert f"threads {max(1, (os.cpu_count() or 1) // 2)}" in printed("93_c"), printed("93_c")
    assert proc.stdout.index("[91_a] running") > proc.stdout.index("[92_b] done")
    assert "threads all" in printed("94_d") and "lead done False" in printed("94_d")
    assert proc.stdout.index("[94_d] done") < min(proc.stdout.index(f"[{n}] running")
                                                  for n in ("91_a", "92_b", "93_c"))


def test_the_runner_checks_parameters_without_importing_torch():
    """Checking a notebook's parameters is the runner's own work before each notebook: it must not
    pay torch's import (about 1.3 s a notebook, a tenth of a re-executed report)."""
    code = ("import sys; from skipanalysis.pipeline import runner; "
            "runner.notebook_parameters('notebooks/03_equivalence.ipynb', 'quick', 'cpu', '/tmp'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
