"""The run store: a finished training run is kept on disk and loaded instead of retrained.

A run is described by a plain config (a JSON-able dict: model, data, recipe, seed, device kind, precision) and
keyed by a hash of that config together with a fingerprint of the code that produces its numbers (the contents of
the package files it names, e.g. the training loop, the models and the data loader; never plotting, report or
progress settings). Its record lives in ``<store>/<key[:2]>/<key>/``:

- ``record.json``: the config, the results (final metrics, convergence record, per-step history), the wall time,
  the device and machine it ran on, the package versions and the date;
- ``weights.pt``: the trained weights, where a later step needs the model (lesions, landscapes, constructions).

``record.json`` is written last and atomically, so a run killed mid-write leaves nothing that loads. A record
that does not parse, or whose key does not match, is moved aside to ``<store>/corrupt/`` and the run is redone;
it is never read as a result.

The store is ``runs/`` at the repository root (git-ignored) unless ``SKIPANALYSIS_RUNS`` names another folder.
``python -m skipanalysis.runs ls`` lists it; ``python -m skipanalysis.runs prune`` empties it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .provenance import package_versions, write_json_atomic

ROOT = Path(__file__).resolve().parent.parent
TRAINING_CODE = ("skipanalysis/train.py", "skipanalysis/data.py", "skipanalysis/models")


class StoreError(ValueError):
    """A store folder that cannot be used."""


def default_root() -> Path:
    return Path(os.environ.get("SKIPANALYSIS_RUNS") or ROOT / "runs")


def code_fingerprint(paths: tuple[str, ...] = TRAINING_CODE, root: Path = ROOT) -> str:
    """sha256 over the contents of the named package files (folders: every ``*.py`` inside), in path order."""
    h = hashlib.sha256()
    for rel in paths:
        p = root / rel
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def tensor_fingerprint(*tensors) -> str:
    """sha256 over the shapes, dtypes and bytes of tensors (a data set's identity in a run's config)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def run_key(config: dict[str, Any], code: str) -> str:
    """The key of a run: sha256 of the canonical JSON of ``config`` and the code fingerprint ``code``."""
    text = json.dumps({"config": config, "code": code}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


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
            raise StoreError(f"run store {self.root} is not writable ({exc.strerror}); set SKIPANALYSIS_RUNS to a "
                             "folder you can write") from None

    def folder(self, key: str) -> Path:
        return self.root / key[:2] / key

    def load(self, key: str) -> dict[str, Any] | None:
        """The record of a finished run, or None. A corrupt record is moved to ``corrupt/`` and None returned."""
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
            print(f"[runs] {path}: unreadable record ({exc}); moved to {aside}, the run will be redone",
                  file=sys.stderr)
            return None
        return record

    def weights(self, key: str) -> Path:
        return self.folder(key) / "weights.pt"

    def save(self, key: str, config: dict[str, Any], result: dict[str, Any], seconds: float,
             state_dict: dict | None = None, machine: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write a finished run: weights first (atomically), then ``record.json`` (atomically, last)."""
        import torch

        folder = self.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        if state_dict is not None:
            tmp = folder / ".weights.pt.tmp"
            torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp)
            os.replace(tmp, self.weights(key))
        record = {"key": key, "config": config, "result": result, "seconds": seconds, "machine": machine or {},
                  "versions": package_versions(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "weights": state_dict is not None}
        write_json_atomic(folder / "record.json", record)
        return record

    def get_or_run(self, config: dict[str, Any], run: Callable[[], tuple[dict[str, Any], dict | None]],
                   code: str | None = None, machine: dict[str, Any] | None = None) -> tuple[dict[str, Any], bool]:
        """The record of ``config``: loaded when finished, else ``run()`` (returning ``(result, state_dict)``) is
        called and its result saved. Returns ``(record, loaded)``."""
        key = run_key(config, code if code is not None else code_fingerprint())
        record = self.load(key)
        if record is not None:
            return record, True
        t0 = time.perf_counter()
        result, state = run()
        return self.save(key, config, result, time.perf_counter() - t0, state, machine), False

    def records(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.root.glob("??/*/record.json")):
            try:
                out.append(json.loads(path.read_text(encoding="utf-8")))
            except ValueError:
                out.append({"key": path.parent.name, "state": "corrupt"})
        return out

    def prune(self) -> int:
        """Remove every run; returns how many there were."""
        n = len(list(self.root.glob("??/*/record.json")))
        for sub in self.root.iterdir():
            if sub.is_dir():
                shutil.rmtree(sub)
        return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="List or prune the run store.")
    ap.add_argument("command", choices=("ls", "prune"))
    ap.add_argument("--store", default=None, help="the store folder (default: SKIPANALYSIS_RUNS or runs/)")
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
        print(f"{r.get('key', '?')[:12]}  {r.get('state', 'done'):7}  {cfg.get('name', '?'):24} "
              f"seed {cfg.get('seed', '?'):<5} {r.get('machine', {}).get('device', '?'):28} {r.get('seconds', 0):7.1f} s")
    print(f"[runs] {len(rows)} run(s) in {store.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
