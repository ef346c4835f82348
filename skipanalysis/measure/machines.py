"""Hardware files: one JSON per machine and device with the numbers notebook 04 measured there,
named by the machine's identity (``machine_id``), with the code path that ran (``code_paths``);
published peaks for devices that are not here, labelled as projections wherever they are used."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from ..provenance import git_commit, jsonable, package_versions, write_json_atomic

# Published peak specs for devices that may not be present: labelled "projected, not measured"
# wherever used.
PUBLISHED_PEAKS = {
    "NVIDIA H100 SXM (bf16 dense)": {"flops": 989e12, "bytes_per_s": 3.35e12},
    "NVIDIA A100 80GB SXM (bf16 dense)": {"flops": 312e12, "bytes_per_s": 2.04e12},
    "Google TPU v4 (bf16, per chip)": {"flops": 275e12, "bytes_per_s": 1.2e12},
}


def code_paths(device: torch.device | str, fingerprint: dict[str, Any] | None = None) -> str:
    """Which of this module's device-specific code paths a measurement on ``device`` takes, in one
    paragraph."""
    kind = torch.device(device).type
    if kind == "cuda":
        lines = ["timings synchronised with torch.cuda.synchronize",
                 "fp32, channels_last and bf16-autocast "
                 "variants timed", "allocator peaks recorded beside the counted bytes",
                 "recomputation with "
                 "torch.utils.checkpoint"]
    elif kind == "mps":
        lines = ["timings synchronised with torch.mps.synchronize", "fp32 only",
                 "recomputation with "
                 "torch.utils.checkpoint"]
    elif kind == "xla":
        backend = (fingerprint or {}).get("xla_backend", "unknown")
        lines = [f"XLA device on PJRT's {backend} client"
                 + (" (XLA on CPU: the TPU code path exercised, a CPU "
                 "measured, never a TPU)" if backend == "CPU" else ""),
                 "timings closed with xm.mark_step and "
                 "xm.wait_device_ops (the untimed warm-up call compiles each graph)",
                 "fp32 only", "recomputation with torch_xla.utils.checkpoint",
                 "bytes saved for backward counted "
                 "on a CPU copy (XLA tensors have no data pointers)"]
    else:
        lines = ["CPU: no device synchronisation", "fp32 only",
                 "recomputation with torch.utils.checkpoint"]
    return f"Code paths on {kind}: " + "; ".join(lines) + "."


def machine_id(fingerprint: dict[str, Any]) -> str:
    """A file-name-safe name for a machine: device type, model and threads (stable across
    hostnames)."""
    dev = str(fingerprint.get("device") or "cpu").split(":")[0]
    if dev == "cuda" and fingerprint.get("cuda_devices"):
        model = fingerprint["cuda_devices"][0]["name"]
    elif dev == "cpu":
        model = f"{fingerprint.get('cpu_model', 'cpu')} {fingerprint.get('torch_threads', '')}t"
    elif dev == "xla" and fingerprint.get("xla_backend") == "CPU":
        model = f"on-cpu {fingerprint.get('cpu_model', 'cpu')}"
    elif dev == "xla" and fingerprint.get("xla_backend"):
        model = fingerprint["xla_backend"]
    else:
        model = fingerprint.get("platform", "")
    slug = re.sub(r"[^a-z0-9]+", "-", f"{dev} {model}".lower()).strip("-")
    return slug[:80]


def write_hardware_file(folder: str | Path, fingerprint: dict[str, Any], numbers: dict[str, Any],
                        commit: str | None = None, versions: dict[str, str] | None = None) -> Path:
    """Write this machine's numbers as ``<folder>/<machine_id>.json`` (atomic), with the git commit
    of the project and the package versions that made them (``provenance``; given values win, for
    tests)."""

    commit = commit if commit is not None else git_commit(Path(__file__).resolve().parents[2])
    versions = versions if versions is not None else package_versions()

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{machine_id(fingerprint)}.json"
    write_json_atomic(path,
                      jsonable({"machine": machine_id(fingerprint), "fingerprint": fingerprint,
                                       "versions": versions, "git_commit": commit,
                                       "date": fingerprint.get("date"), "numbers": numbers}))
    return path


def load_hardware_files(*folders: str | Path) -> dict[str, dict]:
    """Every hardware file in ``folders`` by machine id (later folders win on a clash)."""
    out = {}
    for folder in folders:
        for p in sorted(Path(folder).glob("*.json")):
            data = json.loads(p.read_text(encoding="utf-8"))
            out[data.get("machine", p.stem)] = data
    return out
