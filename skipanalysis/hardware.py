"""Device selection and a fingerprint of the machine a result was measured on.

``auto`` picks, in order, CUDA, Apple's MPS, an XLA device (a TPU through
``torch_xla``) and the CPU. Asking explicitly for a device that is not there is
an error that says what is present, so a run never silently measures the wrong
hardware.
"""

from __future__ import annotations

import importlib.util
import os
import platform
from datetime import datetime, timezone
from typing import Any

import torch

from .params import DEVICE_CHOICES
from .provenance import cpu_model, memory_bytes


def _xla_available() -> bool:
    return importlib.util.find_spec("torch_xla") is not None


def available_devices() -> list[str]:
    """Names of the device types present on this machine (``cpu`` always)."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    if _xla_available():
        found.append("xla")
    found.append("cpu")
    return found


def _xla_device() -> torch.device:
    import torch_xla  # noqa: F401  (import registers the device type)

    try:
        return torch_xla.device()
    except AttributeError:  # older torch_xla
        import torch_xla.core.xla_model as xm

        return xm.xla_device()


def select_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``name``.

    Args:
        name: one of ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``xla``.

    Raises:
        ValueError: the name is not one of the choices, or that device is absent.
    """
    if not isinstance(name, str):
        raise ValueError(f"device={name!r}: expected a string, one of {', '.join(DEVICE_CHOICES)}")
    kind = name.split(":", 1)[0].strip().lower()
    if kind not in DEVICE_CHOICES:
        raise ValueError(
            f"device={name!r} is not allowed; choose one of {', '.join(DEVICE_CHOICES)}")
    present = available_devices()
    if kind == "auto":
        kind = present[0]
        name = kind
    if kind not in present:
        raise ValueError(
            f"device={name!r} was asked for but is not present on this machine; "
            f"present: {', '.join(present)} (use device='auto' to take the best one)"
        )
    if kind == "xla":
        return _xla_device()
    if kind == "cuda" and ":" in name:
        index = int(name.split(":", 1)[1])
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device={name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return torch.device(name)


def fingerprint(device: torch.device | str | None = None) -> dict[str, Any]:
    """Describe the machine: CPU, memory, accelerators and library versions.

    Args:
        device: the device the notebook runs on; recorded as ``device``.
    """
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_bytes": memory_bytes(),
        "device": str(device) if device is not None else None,
        "devices_present": available_devices(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if torch.cuda.is_available():
        info["cuda_version"] = torch.version.cuda
        info["cudnn_version"] = torch.backends.cudnn.version()
        info["cuda_devices"] = [
            {
                "name": torch.cuda.get_device_name(i),
                "memory_bytes": torch.cuda.get_device_properties(i).total_memory,
                "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
            }
            for i in range(torch.cuda.device_count())
        ]
    if "xla" in info["devices_present"]:
        try:
            import torch_xla

            info["torch_xla"] = getattr(torch_xla, "__version__", "unknown")
        except Exception as exc:  # the fingerprint must never stop a notebook
            info["torch_xla"] = f"import failed: {exc}"
    if info["device"] and info["device"].startswith("xla"):
        info["xla_backend"] = xla_backend()
    return info


def xla_backend() -> str:
    """The hardware behind XLA devices: ``TPU``, ``CUDA``, ``CPU`` (PJRT's CPU client), or
    ``unknown``."""
    try:
        import torch_xla.runtime as xr

        return str(xr.device_type() or os.environ.get("PJRT_DEVICE", "unknown")).upper()
    except Exception:  # the fingerprint must never stop a notebook
        return os.environ.get("PJRT_DEVICE", "unknown").upper()


def device_label(info: dict[str, Any]) -> str:
    """A short human name for the device in a fingerprint (e.g. ``cuda (NVIDIA H100)``)."""
    dev = str(info.get("device") or "cpu")
    if dev.startswith("cuda") and info.get("cuda_devices"):
        return f"cuda ({info['cuda_devices'][0]['name']})"
    if dev.startswith("cpu"):
        return f"cpu ({info.get('cpu_model', '?')}, {info.get('torch_threads', '?')} threads)"
    if dev.startswith("xla"):
        backend = info.get("xla_backend", "unknown")
        # PJRT's CPU client: exercises the TPU code path, measures a CPU, never a TPU
        if backend == "CPU":
            return f"xla (XLA on CPU: {info.get('cpu_model', '?')}, not a TPU)"
        return f"xla ({backend})"
    return dev
