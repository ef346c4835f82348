"""Execute one notebook with papermill for a profile, atomically.

``python -m skipanalysis.pipeline.runner notebooks/03_equivalence.ipynb reports/03_equivalence.ipynb
--profile quick`` ``python -m skipanalysis.pipeline.runner notebooks/01_degradation.ipynb
/tmp/seed1/01_degradation.ipynb -p seed=1``

The notebook's parameters come from ``notebooks/params/<profile>.yaml`` (the section named after the
notebook) plus ``profile``, ``device`` and ``report_dir``. The run writes into a private staging
folder; only when every cell succeeded are its figures and claims moved into ``reports/`` and the
executed notebook renamed into place (last, because it is what make checks). A failure prints the
notebook, the failing cell and the error, keeps the partial notebook under ``reports/failed/`` for
inspection, and leaves every earlier result untouched.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from .. import executors
from .. import params as specs
from ..params import DEVICE_CHOICES, PROFILES, RESERVED, ParameterError
from ..provenance import git_commit, machine_line, write_json_atomic


def load_profile(params_dir: str | os.PathLike, profile: str) -> dict[str, dict[str, Any]]:
    """Read ``<params_dir>/<profile>.yaml``: a mapping from notebook name to its parameters."""
    if profile not in PROFILES:
        raise ParameterError(
            f"PROFILE={profile!r} is not allowed; choose one of {', '.join(PROFILES)}")
    path = Path(params_dir) / f"{profile}.yaml"
    if not path.exists():
        raise ParameterError(f"profile file {path} is missing")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ParameterError(
            f"{path}: not valid YAML{where} ({getattr(exc, 'problem', None) or exc})") from None
    return specs.notebook_sections(data, str(path))


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["seed=1", "lrs=[0.1]"]`` -> ``{"seed": 1, "lrs": [0.1]}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ParameterError(f"-p {item!r} is not allowed; expected NAME=VALUE, e.g. -p seed=1")
        out[name.strip()] = yaml.safe_load(value)
    return out


MORE_TAG = "more-parameters"


def declared_parameters(notebook: str | os.PathLike) -> dict[str, dict]:
    """Every parameter ``notebook`` declares, as ``papermill.inspect_notebook`` describes them (name
    -> ``{"name", "inferred_type_name", "default", "help"}``): those of its cell tagged
    ``parameters`` and of any cells tagged ``more-parameters`` above it (recipe details, kept apart
    so that no cell grows long). papermill injects its values after the ``parameters`` cell, so an
    override reaches both.

    Raises:
        ParameterError: a ``more-parameters`` cell comes after the ``parameters`` cell (the injected
        values would
            be overwritten by its defaults), or a name is declared twice.
        Exception: whatever nbformat raises for a file that is not a readable notebook.
    """
    import nbformat
    from papermill.translators import papermill_translators
    from papermill.utils import nb_kernel_name, nb_language

    nb = nbformat.read(str(notebook), as_version=4)
    translator = papermill_translators.find_translator(nb_kernel_name(nb), nb_language(nb))
    out: dict[str, dict] = {}
    main = False
    for i, cell in enumerate(nb.cells):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if not tags & {"parameters", MORE_TAG} or cell.cell_type != "code":
            continue
        if main:
            raise ParameterError(f"{notebook}: cell {i} is tagged {MORE_TAG!r} but comes after the "
                                 "'parameters' cell; move it above, where papermill's injected "
                                 "values cannot be overwritten")
        for p in translator.inspect(cell):
            if p.name in out:
                raise ParameterError(
                    f"{notebook}: parameter {p.name!r} is declared twice (cell {i} again)")
            out[p.name] = p._asdict()
        main = "parameters" in tags
    return out if main else {}


def notebook_parameters(notebook: str | os.PathLike, profile: str, device: str,
                        report_dir: str | os.PathLike,
                        params_dir: str | os.PathLike | None = None,
                        overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters papermill injects into ``notebook`` for ``profile``, with ``overrides`` on
    top.

    Raises:
        ParameterError: the profile or device is not allowed, or the profile names
            a parameter the notebook's parameter cells do not define (``declared_parameters``).
    """
    notebook = Path(notebook)
    params_dir = Path(params_dir) if params_dir else notebook.parent / "params"
    kind = device.split(":", 1)[0]
    if kind not in DEVICE_CHOICES:
        raise ParameterError(
            f"DEVICE={device!r} is not allowed; choose one of {', '.join(DEVICE_CHOICES)}")
    section = {**load_profile(params_dir, profile).get(notebook.stem, {}),
               **(specs.overlay(notebook.stem) or {}),
               **(overrides or {})}
    try:
        declared = declared_parameters(notebook)
    except ParameterError:
        raise
    except Exception as exc:  # nbformat's NotJSONError, a JSON or validation error, a missing file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ParameterError(
            f"{notebook}: not a readable notebook ({type(exc).__name__}: {first})") from None
    if not declared:
        raise ParameterError(
            f"{notebook}: no cell tagged 'parameters' (see README, 'Adding a notebook')")
    bad = sorted(set(overrides or {}) & set(RESERVED)) or sorted(
        set(overrides or {}) - set(declared))
    if bad:
        raise ParameterError(f"-p {bad[0]}=... is not allowed for {notebook.stem}; it defines "
                             f"{sorted(set(declared) - set(RESERVED))} (profile, device and "
                             "report_dir have their own options)")
    unknown = sorted(set(section) - set(declared))
    if unknown:
        where = params_dir / (profile + ".yaml")
        if specs.overlay(notebook.stem) is not None:
            where = f"{where} with {specs.OVERLAY_ENV}={os.environ[specs.OVERLAY_ENV]}"
        raise ParameterError(f"{where}, section {notebook.stem}: parameter(s) {unknown} "
                             f"are not defined in the notebook; it defines {sorted(declared)}")
    missing = [r for r in RESERVED if r not in declared]
    if missing:
        raise ParameterError(f"{notebook}: its parameters cell must define {missing} (see README)")
    injected = {**section, "profile": profile, "device": device,
                "report_dir": str(Path(report_dir).resolve())}
    specs.check(notebook.stem, {**cell_defaults(declared), **injected})
    return injected


def cell_defaults(declared: dict[str, dict]) -> dict[str, Any]:
    """The parameter cells' default values (``declared_parameters`` gives their source text)."""
    import ast

    out = {}
    for name, info in declared.items():
        try:
            out[name] = ast.literal_eval(info.get("default", "None"))
        except (ValueError, SyntaxError):
            pass  # an expression, not a literal: the kernel computes it and setup() checks it
    return out


def resolved_parameters(notebook: str | os.PathLike, profile: str,
                        params_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """What ``notebook``'s parameters are under ``profile``: its parameters cell's defaults with the
    profile's section on top (how a notebook reads another's settings, e.g. 07 asking for 01's
    nets)."""
    notebook = Path(notebook)
    params_dir = Path(params_dir) if params_dir else notebook.parent / "params"
    return {**cell_defaults(declared_parameters(notebook)),
            **load_profile(params_dir, profile).get(notebook.stem, {}),
            **(specs.overlay(notebook.stem) or {})}


def _move_results(staging: Path, reports: Path, name: str) -> None:
    """Move a successful run's figures, claims and other files from staging into ``reports``."""
    figures = reports / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    new = {p.name for p in (staging / "figures").glob("*")}
    for old in figures.glob(f"{name}-*"):
        if old.name not in new:  # a figure this run no longer makes
            old.unlink()
    for p in (staging / "figures").glob("*"):
        os.replace(p, figures / p.name)
    # claims/, hardware/, ...: file by file into the same folder under reports
    for sub in staging.iterdir():
        if sub.is_dir() and sub.name != "figures":
            (reports / sub.name).mkdir(parents=True, exist_ok=True)
            for p in sub.glob("*"):
                if p.is_file():
                    os.replace(p, reports / sub.name / p.name)


def threads_under_make(env: dict[str, str] | None = None, cores: int | None = None) -> int | None:
    """Torch threads per notebook when ``make -jN`` runs N notebooks at once: the cores shared out
    (at least one), so N kernels do not each spin a thread per core (oversubscribed, they run
    several times slower). None when make runs one job, or when ``OMP_NUM_THREADS`` is already
    set."""
    import re

    env = os.environ if env is None else env
    if env.get("OMP_NUM_THREADS"):
        return None
    m = re.search(r"(?:^|\s)-j(\d*)(?:\s|$)", env.get("MAKEFLAGS", ""))
    if not m:
        return None
    jobs = int(m.group(1)) if m.group(1) else 0  # plain -j: no limit
    cores = cores or os.cpu_count() or 1
    if jobs == 1:
        return None
    return max(1, cores // jobs) if jobs else 1


def serial_make(env: dict[str, str] | None = None) -> bool:
    """make runs one notebook at a time (no ``-jN``, or ``-j1``): each notebook has the machine to
    itself, so the runner treats it as ``alone``. Its runs then train one process per core at one
    thread each, as under ``-j2``, so a serial and a parallel ``make report`` store the same
    numbers. False outside make."""
    import re

    env = os.environ if env is None else env
    if "MAKELEVEL" not in env:
        return False
    m = re.search(r"(?:^|\s)-j(\d*)(?:\s|$)", env.get("MAKEFLAGS", ""))
    return not m or m.group(1) == "1"


def _kernel_manager_class():
    """The kernel manager the runner starts kernels with: IPC (Unix sockets) instead of TCP on Linux
    and macOS, so the kernel has no open port and does not warn "Kernel is running over TCP without
    encryption" on every run. Elsewhere, jupyter_client's default (TCP on loopback)."""
    from jupyter_client.manager import AsyncKernelManager

    if os.name != "posix":
        return AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kw):
            import uuid

            from jupyter_core.paths import jupyter_runtime_dir

            super().__init__(**kw)
            self.transport = "ipc"
            # sockets named per kernel in Jupyter's runtime folder (default: kernel-ipc-N in the
            # working folder,
            # shared by notebooks that run at the same time); removed when the kernel shuts down
            runtime = Path(jupyter_runtime_dir())
            runtime.mkdir(parents=True, exist_ok=True)
            self.ip = str(runtime / f"kernel-{uuid.uuid4().hex[:12]}-ipc")

    return IPCKernelManager


class _KnownParameters(logging.Filter):
    """Drops papermill's "Passed unknown parameter" warning for parameters a ``more-parameters``
    cell declares (papermill reads only the ``parameters`` cell; ``notebook_parameters`` has checked
    every name already)."""

    def __init__(self, names: set[str]):
        super().__init__()
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        head, _, name = record.getMessage().partition(": ")
        return not (head == "Passed unknown parameter" and name in self.names)


def record_timing(reports: Path, name: str, profile: str, device: str, seconds: float, alone: bool,
                  repo: Path) -> Path:
    """Write ``<reports>/timings/<name>.json``: the notebook's wall time, when it ended, how it ran
    (profile, device, alone or sharing the cores), the commit and the machine. The report gathers
    them into ``timings.json``."""
    path = reports / "timings" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        path, {"notebook": name, "seconds": round(seconds, 1), "profile": profile, "device": device,
                             "ended": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             "alone": alone,
                             "threads": os.environ.get("OMP_NUM_THREADS"),
                             "commit": git_commit(repo),
                             "machine": machine_line()})
    return path


def run_notebook(notebook: str | os.PathLike, output: str | os.PathLike, profile: str = "quick",
                 device: str = "auto", kernel_name: str = "python3", progress: bool = True,
                 overrides: dict[str, Any] | None = None, alone: bool = False) -> Path:
    """Execute ``notebook`` into ``output`` with papermill (see the module docstring).

    ``alone``: the notebook runs by itself (make runs the lead notebook before the others and the
    timing notebook after them; under a serial make the command line runs every notebook alone,
    ``serial_make``), so it keeps every core instead of its share under ``make -jN``: its runs train
    in one process per core (``SKIPANALYSIS_WORKERS``, unless set), and its kernel's torch uses
    every thread.

    Returns:
        The executed notebook's path.

    Raises:
        ParameterError: bad profile, device or parameters (before anything runs).
        papermill.PapermillExecutionError: a cell failed (after cleaning up).
    """
    import papermill as pm

    notebook, output = Path(notebook), Path(output)
    name = notebook.stem
    reports = output.parent
    staging = reports / ".staging" / name
    # before any file changes
    params = notebook_parameters(notebook, profile, device, staging, overrides=overrides)
    executors.check_executor()  # EXECUTOR, Ray and RAY_ADDRESS, before any file changes too
    reports.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    partial = staging / f"{name}.ipynb"
    # The kernel imports the package of the checkout this notebook belongs to, whatever else is
    # installed.
    repo = str(notebook.resolve().parent.parent)
    if (Path(repo) / "skipanalysis").is_dir():
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [repo] + [p for p in os.environ.get("PYTHONPATH", "").split(
            os.pathsep) if p])
    # run_grid's bar of runs
    os.environ.setdefault("SKIPANALYSIS_PROGRESS", "terminal" if progress else "off")
    if not alone and (threads := threads_under_make()) is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the kernel's torch reads it at import
    if alone:
        os.environ.setdefault("SKIPANALYSIS_WORKERS", str(os.cpu_count() or 1))
    quiet = _KnownParameters(set(params))
    logging.getLogger("papermill").addFilter(quiet)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(notebook), str(partial), parameters=params, kernel_name=kernel_name,
                            cwd=str(notebook.parent), progress_bar=progress and {"desc": name},
                            log_output=False,
                            report_mode=False, kernel_manager_class=_kernel_manager_class())
        _move_results(staging, reports, name)
        os.replace(partial, output)
        record_timing(reports, name, profile, device, time.perf_counter() - t0, alone, Path(repo))
    except BaseException:
        if partial.exists():
            failed = reports / "failed"
            failed.mkdir(exist_ok=True)
            os.replace(partial, failed / f"{name}.ipynb")
        raise
    finally:
        logging.getLogger("papermill").removeFilter(quiet)
        shutil.rmtree(staging, ignore_errors=True)
    failed_copy = reports / "failed" / f"{name}.ipynb"
    if failed_copy.exists():
        failed_copy.unlink()
    return output


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook")
    ap.add_argument("output")
    ap.add_argument("--profile", default="quick", help=f"one of {', '.join(PROFILES)}")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, mps or xla")
    ap.add_argument("--kernel", default="python3")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--alone", action="store_true",
                    help="the notebook runs by itself: every core, whatever make -jN shares out")
    ap.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                    help="override one parameter of the profile (value read as YAML); repeatable")
    args = ap.parse_args(argv)
    import papermill as pm

    name = Path(args.notebook).stem
    print(f"[{name}] running with profile={args.profile} device={args.device}"
          + "".join(f" {p}" for p in args.param or []), flush=True)
    t0 = time.perf_counter()
    try:
        run_notebook(args.notebook, args.output, args.profile, args.device, args.kernel,
                     not args.no_progress,
                     parse_overrides(args.param), alone=args.alone or serial_make())
    except (ParameterError, executors.StoreError) as exc:
        print(f"[{name}] bad input: {exc}", file=sys.stderr)
        return 2
    except pm.PapermillExecutionError as exc:
        print(f"\n[{name}] FAILED in cell {exc.cell_index} (execution count {exc.exec_count}): "
              f"{exc.ename}: {exc.evalue}\n[{name}] the partial notebook is kept in "
              f"{Path(args.output).parent / 'failed' / (name + '.ipynb')}; nothing else was "
              "changed.",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n[{name}] interrupted; nothing was changed", file=sys.stderr)
        return 130
    print(f"[{name}] done in {time.perf_counter() - t0:.1f} s -> {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
