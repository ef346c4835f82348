"""The run store: a finished training run is kept on disk and loaded instead of retrained.

A run is described by a plain config (a JSON-able dict: model, data, recipe, seed, device kind,
precision) and keyed by a hash of that config together with a fingerprint of the code that produces
its numbers: the training loop (``train.py``, whole), the source of the run function and of every
package function it reaches (data helpers included, function by function), and the model files the
config's net is built from (``model_fingerprint``). Data enter by value: a config holds the
fingerprint of its tensors, so an edit to a loader re-runs what it changes and nothing else; an edit
to the text task leaves the CIFAR runs alone. Never plotting, report or progress settings. Its
record lives in ``<store>/<key[:2]>/<key>/``:

- ``record.json``: the config, the results (final metrics, convergence record, per-step history),
  the wall time, the device and machine it ran on, the package versions, the date and the parts of
  its code fingerprint (the training loop and each function the run reaches, by a short hash each:
  what `make compare` names);
- ``weights.pt``: the trained weights, where a later step needs the model (lesions, landscapes,
  constructions).

``record.json`` is written last and atomically, so a run killed mid-write leaves nothing that loads.
A record that does not parse, or whose key does not match, is moved aside to ``<store>/corrupt/``
and the run is redone; it is never read as a result.

The store is ``runs/`` at the repository root (git-ignored) unless ``SKIPANALYSIS_RUNS`` names
another folder. ``python -m skipanalysis.runs ls`` lists it; ``python -m skipanalysis.runs prune``
empties it.

``run_grid`` asks the store for a grid of configs: finished runs load, the missing ones go to an
executor, chosen by the ``EXECUTOR`` environment variable:

- ``local`` (default): one after another in this process (the kernel); or, on a CPU with
  ``SKIPANALYSIS_WORKERS`` above 1 (``make report`` sets it for the notebook it runs by itself), in
  that many joblib processes with one torch thread each;
- ``ray``: one Ray task per missing run, on the cluster at ``RAY_ADDRESS`` or on a Ray instance
  started here. A CUDA run asks for ``RAY_GPUS_PER_RUN`` of a GPU (default 0.25, so four small CIFAR
  runs share a card), a CPU run for one core. Install Ray with ``pip install -e ".[cluster]"``.

Either way the driver writes each record as its run finishes, so a killed ``make report`` keeps
every finished run, and a tqdm bar counts runs done and remaining with an estimate from the store's
earlier timings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .executors import StoreError, check_executor, check_ray_address, executor_name, workers
from .keys import ROOT, code_parts, fn_fingerprint, model_fingerprint, run_key
from .provenance import atomic_path, package_versions, write_json_atomic


def default_root() -> Path:
    return Path(os.environ.get("SKIPANALYSIS_RUNS") or ROOT / "runs")


class RunStore:
    """Finished runs by key (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise StoreError(
                f"run store {self.root} is not writable ({exc.strerror}); set SKIPANALYSIS_RUNS to "
                "a folder you can write") from None

    def folder(self, key: str) -> Path:
        return self.root / key[:2] / key

    def load(self, key: str) -> dict[str, Any] | None:
        """The record of a finished run, or None. A corrupt record is moved to ``corrupt/`` and None
        returned.

        A load marks the record used now (its file's modification time, as a save does), so ``make
        plan`` can tell the runs behind a notebook's last execution from runs that newer code or
        parameters superseded (``used_since``)."""
        path = self.folder(key) / "record.json"
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("key") != key:
                raise ValueError(f"key {record.get('key')!r} does not match the folder")
        except (ValueError, OSError) as exc:
            aside = self.root / "corrupt" / f"{key}-{int(time.time())}"
            aside.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(self.folder(key)), aside)
            print(
                f"[runs] {path}: unreadable record ({exc}); moved to {aside}, the run will be "
                "redone",
                  file=sys.stderr)
            return None
        try:
            os.utime(path)
        except OSError:
            pass  # a read-only store: its records still load, only the mark is lost
        return record

    def weights(self, key: str) -> Path:
        return self.folder(key) / "weights.pt"

    def save(self, key: str, config: dict[str, Any], result: dict[str, Any], seconds: float,
             state_dict: dict | None = None, machine: dict[str, Any] | None = None,
             code: dict[str, str] | None = None) -> dict[str, Any]:
        """Write a finished run: weights first (atomically), then ``record.json`` (atomically,
        last). ``code``: the parts of its code fingerprint (``code_parts``), kept for ``make
        compare``."""
        import torch

        folder = self.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        if state_dict is not None:
            # a temporary name of its own: two writers never mix
            with atomic_path(self.weights(key)) as tmp:
                torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp)
        record = {"key": key, "config": config, "result": result, "seconds": seconds,
                  "machine": machine or {},
                  "versions": package_versions(),
                  "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "weights": state_dict is not None, **({"code": code} if code else {})}
        write_json_atomic(folder / "record.json", record)
        return record

    def records(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.root.glob("??/*/record.json")):
            try:
                out.append(json.loads(path.read_text(encoding="utf-8")))
            except ValueError:
                out.append({"key": path.parent.name, "state": "corrupt"})
        return out

    def used_since(self, since: float) -> list[dict[str, Any]]:
        """The readable records saved or loaded at or after ``since`` (seconds since the epoch)."""
        out = []
        for path in sorted(self.root.glob("??/*/record.json")):
            try:
                if path.stat().st_mtime >= since:
                    out.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return out

    def prune(self) -> int:
        """Remove every run; returns how many there were."""
        n = len(list(self.root.glob("??/*/record.json")))
        for sub in self.root.iterdir():
            if sub.is_dir():
                shutil.rmtree(sub)
        return n


# --- executors ------------------------------------------------------------------------------------

def _progress_bar(total: int, desc: str, estimate: float | None):
    """A tqdm bar for the runs left: on the terminal of ``make report`` when the runner started this
    kernel (``SKIPANALYSIS_PROGRESS=terminal``), in the notebook otherwise."""
    if os.environ.get("SKIPANALYSIS_PROGRESS") == "terminal":
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, unit="run", file=sys.__stderr__, mininterval=1.0)
    else:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit="run",
                   disable=os.environ.get("SKIPANALYSIS_PROGRESS") == "off")
    if estimate is not None:
        bar.set_postfix_str(f"about {estimate / 60:.1f} min by earlier runs")
    return bar


def _where(device) -> dict[str, Any]:
    import platform

    import torch

    return {"host": platform.node(), "processor": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name(device) if str(device).startswith("cuda")
            else str(device)}


def _local(fn: Callable, configs: list[dict], shared: tuple, device) -> Any:
    for i, config in enumerate(configs):
        t0 = time.perf_counter()
        result, state = fn(config, *shared, device=device)
        yield i, result, state, time.perf_counter() - t0, {
            **_where(device or config.get("device", "cpu")),
                                                          "executor": "local"}


_IN_WORKER = False  # set in a joblib worker process (``_in_process``)


def _in_process(fn: Callable, config: dict, shared: tuple, device) -> tuple:
    import torch

    global _IN_WORKER
    # no per-step bars: the workers' bars would interleave on one terminal (run_grid counts runs)
    _IN_WORKER = True
    torch.set_num_threads(1)  # one core each: the processes share the machine's cores out
    t0 = time.perf_counter()
    result, state = fn(config, *shared, device=device)
    return result, state, time.perf_counter() - t0, {
        **_where(device or config.get("device", "cpu")),
                                                     "executor": "processes"}


def _processes(fn: Callable, configs: list[dict], shared: tuple, device, n: int) -> Any:
    from joblib import Parallel, delayed

    jobs = (delayed(_in_process)(fn, config, shared, device) for config in configs)
    for i, out in enumerate(Parallel(n_jobs=n, return_as="generator")(jobs)):
        yield (i, *out)


def _timed(fn: Callable, config: dict, *shared) -> tuple:
    t0 = time.perf_counter()
    result, state = fn(config, *shared, device=None)
    return result, state, time.perf_counter() - t0, {**_where(config.get("device", "cpu")),
                                                     "executor": "ray"}


def _on_cpu(x):
    import torch
    from torch.utils.data import TensorDataset

    if isinstance(x, TensorDataset):
        return TensorDataset(*(t.cpu() for t in x.tensors))
    return x.cpu() if isinstance(x, torch.Tensor) else x


def _ray(fn: Callable, configs: list[dict], shared: tuple) -> Any:
    import ray

    if not ray.is_initialized():
        check_ray_address()
        path = os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p)
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, include_dashboard=False,
                 log_to_driver=False,
                 # workers here import this checkout
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
    refs = [ray.put(_on_cpu(x)) for x in shared]
    gpu = float(os.environ.get("RAY_GPUS_PER_RUN", "0.25"))
    task = ray.remote(_timed)
    pending = {task.options(num_cpus=1, num_gpus=gpu if c.get("device") == "cuda"
                            else 0).remote(fn, c, *refs): i
               for i, c in enumerate(configs)}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(done[0])
        yield (i, *ray.get(done[0]))


def version_drift(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The package versions of ``records`` that differ from this environment's: ``{}`` when all
    agree, else ``{"runs": n, "versions": {package: {their versions}}, "<package> now": this
    version}``."""
    now = package_versions()
    versions: dict[str, set[str]] = {}
    n = 0
    for r in records:
        other = {k: v for k, v in (r.get("versions") or {}).items() if k in now and v != now[k]}
        n += bool(other)
        for k, v in other.items():
            versions.setdefault(k, set()).add(v)
    if not n:
        return {}
    return {"runs": n, "versions": versions, **{f"{k} now": now[k] for k in versions}}


def task_device(device, config: dict[str, Any]):
    """``(device, bar)`` for a run function: the local executor's ``device``, or for a Ray task
    (``device`` None) the device kind of ``config["device"]`` on the device Ray gave it; ``bar``
    says whether the run draws its own per-step progress bar: only in the kernel's own process (not
    in a Ray task or a worker process), and only in a kernel the runner did not start
    (``SKIPANALYSIS_PROGRESS`` unset: JupyterLab); a notebook the runner executes keeps no per-step
    bars in its output."""
    import torch

    local = device is not None
    bar = local and not _IN_WORKER and os.environ.get("SKIPANALYSIS_PROGRESS") is None
    return torch.device(device if local else config["device"]), bar


def state_of(record: dict[str, Any], store: RunStore | None) -> dict | None:
    """The trained weights of a run record: in memory for a fresh run, else from ``store`` (None if
    it kept none)."""
    if record.get("state") is not None:
        return record["state"]
    if store is None or not record.get("weights"):
        return None
    import torch

    return torch.load(store.weights(record["key"]), weights_only=True)


_USED: dict[str, None] = {}  # the keys every run_grid of this process asked for, in order


def used_keys() -> list[str]:
    """The keys of the runs this process has asked the store for since ``forget_used`` (sorted): the
    runs behind the claims a notebook records (``claims.ClaimBook``)."""
    return sorted(_USED)


def forget_used() -> None:
    _USED.clear()


def _cost_class(config: dict[str, Any]) -> tuple:
    """What a run's length depends on besides its seed and rate: its net, its arguments and its
    budget."""
    return (config.get("name"), json.dumps(config.get("model_args"), sort_keys=True, default=str),
            config.get("steps"), config.get("epochs"))


def expected_seconds(config: dict[str, Any], earlier: list[dict[str, Any]]) -> float | None:
    """A run's expected wall time from earlier records: the mean of the runs of its cost class (same
    net, arguments and budget), else of the runs of the same net name; None when the store has
    neither."""
    for same in (lambda c: _cost_class(c) == _cost_class(config),
                 lambda c: c.get("name") == config.get("name")):
        times = [r.get("seconds", 0.0) for r in earlier if same(r.get("config", {}))]
        if times:
            return sum(times) / len(times)
    return None


def longest_first(configs: list[dict[str, Any]], earlier: list[dict[str, Any]],
                  ids: list[Any]) -> list[Any]:
    """``ids`` (one per config) in the order to start their runs: runs with no earlier record first
    (their length is unknown), then by expected wall time, longest first; ties keep their order.
    Several workers then finish a grid together instead of one worker running the longest net alone
    at the end (the greedy LPT schedule)."""
    guess = [expected_seconds(c, earlier) for c in configs]
    order = sorted(range(len(ids)), key=lambda j: (guess[j] is not None, -(guess[j] or 0.0)))
    return [ids[j] for j in order]


def run_grid(configs: list[dict[str, Any]], fn: Callable, shared: tuple = (),
             store: RunStore | None = None,
             device=None, desc: str = "runs", code: str | None = None, executor: str | None = None,
             processes: int = 0) -> list[dict[str, Any]]:
    """The records of ``configs``, in order: loaded from ``store`` when finished, else run by the
    executor.

    ``fn(config, *shared, device=...)`` trains one run and returns ``(result, state_dict)``; it must
    be a module-level function (Ray sends it to other processes) and take everything it needs from
    ``config`` and ``shared`` (the data; sent once). ``device`` is the local executor's device; a
    Ray task gets ``device=None`` and uses ``config["device"]`` on the device Ray gave it. A fresh
    record carries its weights in memory under ``"state"``; a loaded one has them in
    ``store.weights(key)`` when ``record["weights"]``. Without a store, every run runs and nothing
    is saved. A run's key covers its config, the training code (``code``, default
    ``code_fingerprint()``), ``fn``'s own source and what it reaches (``fn_fingerprint``) and its
    net's model files (``model_fingerprint``). ``processes`` > 1 runs the missing runs that many at
    a time in joblib processes on ``device``, a GPU too (several runs sharing one card without Ray,
    as ``make gpu-check`` measures).
    """
    name = executor_name(executor)
    if name == "ray":
        # Ray installed, RAY_ADDRESS and RAY_GPUS_PER_RUN usable: one line otherwise
        check_executor()
    n_workers = workers()
    base, code = code, fn_fingerprint(fn, code)
    models = [model_fingerprint(c) for c in configs]
    keys = [run_key(c, code + m) for c, m in zip(configs, models)]
    _USED.update(dict.fromkeys(keys))
    out: list[dict[str, Any] | None] = [store.load(k) if store is not None else None for k in keys]
    missing = [i for i, r in enumerate(out) if r is None]
    drift = version_drift([r for r in out if r is not None])
    if drift:  # shown in the notebook's output, so in the report
        which = "; ".join(f"{k} {sorted(v)} (here {drift[k + ' now']})" for k,
                          v in drift["versions"].items())
        print(
            f"[runs] {desc}: {drift['runs']} run(s) loaded from the store were made under other "
            f"package versions ({which}); their numbers are those versions' numbers")
    if not missing:
        return out  # type: ignore[return-value]
    parts = code_parts(fn, base)  # kept in the new records, for make compare
    earlier = store.records() if store is not None else []
    guesses = [g for g in (expected_seconds(configs[i], earlier) for i in missing) if g is not None]
    estimate = sum(guesses) * len(missing) / len(guesses) if guesses else None
    import torch

    parallel = name == "ray" or processes > 1 or (executor is None and n_workers > 1
                                                  and torch.device(device or "cpu").type == "cpu")
    if parallel:  # longest first, so no core idles at the end of a grid waiting for one long run
        missing = longest_first([configs[i] for i in missing], earlier, missing)
    todo = [configs[i] for i in missing]
    if name == "ray":
        runs = _ray(fn, todo, shared)
    elif processes > 1:
        runs = _processes(fn, todo, shared, device, min(processes, len(todo)))
    elif parallel:
        # a single run too, so a run's numbers never depend on whether it shared a grid (one thread
        # either way);
        # executor="local" (04's timings) keeps the runs in this process, on every thread
        runs = _processes(fn, todo, shared, device, min(n_workers, len(todo)))
    else:
        runs = _local(fn, todo, shared, device)
    with _progress_bar(len(missing), desc, estimate) as bar:
        for j, result, state, seconds, machine in runs:
            i = missing[j]
            if store is not None:
                record = store.save(keys[i], configs[i], result, seconds, state, machine,
                                    {**parts, "model files": models[i][:12]})
            else:
                record = {"key": keys[i], "config": configs[i], "result": result,
                          "seconds": seconds,
                          "machine": machine, "weights": state is not None}
            out[i] = {**record, "state": state}
            bar.update(1)
    return out  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="List or prune the run store.")
    ap.add_argument("command", choices=("ls", "prune"))
    ap.add_argument("--store", default=None,
                    help="the store folder (default: SKIPANALYSIS_RUNS or runs/)")
    args = ap.parse_args(argv)
    try:
        store = RunStore(args.store)
    except StoreError as exc:
        print(f"[runs] {exc}", file=sys.stderr)
        return 2
    if args.command == "prune":
        print(f"[runs] removed {store.prune()} run(s) from {store.root}")
        return 0
    rows = store.records()
    for r in rows:
        cfg = r.get("config", {})
        where = r.get("machine", {})
        print(f"{r.get('key', '?')[:12]}  {r.get('state', 'done'):7}  {cfg.get('name', '?'):16} "
              f"seed {cfg.get('seed', '?'):<5} {where.get('device', '?'):24} "
              f"{where.get('host', '?'):16} {r.get('seconds', 0):7.1f} s")
    print(f"[runs] {len(rows)} run(s) in {store.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
