"""Where a notebook's missing runs train, checked before any run starts: ``EXECUTOR`` (``local``: in
the kernel, or ``SKIPANALYSIS_WORKERS`` joblib processes; ``ray``: a Ray cluster at ``RAY_ADDRESS``,
``RAY_GPUS_PER_RUN`` of a GPU each). A bad setting is a ``StoreError`` of one line with the fix.
Imports neither torch nor the models, so the runner checks these before each notebook at no cost."""

from __future__ import annotations

import os

EXECUTORS = ("local", "ray")


class StoreError(ValueError):
    """A store folder that cannot be used."""


def executor_name(value: str | None = None) -> str:
    """``EXECUTOR`` (or ``value``), checked: ``local`` or ``ray``; StoreError otherwise (one line,
    the fix)."""
    name = (value if value is not None else os.environ.get("EXECUTOR", "")).strip() or "local"
    if name not in EXECUTORS:
        raise StoreError(
            f"EXECUTOR={name} is not allowed; choose one of {', '.join(EXECUTORS)} (or unset it)")
    return name


def check_ray_address(address: str | None = None, timeout: float = 3.0) -> None:
    """A ``host:port`` ``RAY_ADDRESS`` that accepts no connection raises StoreError at once (Ray
    itself would retry for a minute); ``auto``, ``local`` and ``ray://`` addresses are left to
    Ray."""
    import socket

    address = address if address is not None else os.environ.get("RAY_ADDRESS", "")
    if not address or address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise StoreError(
            f"RAY_ADDRESS={address} is not allowed; give host:port (e.g. 10.0.0.1:6379), auto, or "
            "a ray:// address")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"RAY_ADDRESS={address} is not reachable ({exc}); start the cluster (ray start --head) "
            "or unset RAY_ADDRESS to start a Ray instance on this machine") from None


def check_executor() -> str:
    """Everything ``EXECUTOR=...`` needs, checked before any run starts; returns the executor's
    name."""
    name = executor_name()
    workers()
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise StoreError(
                'EXECUTOR=ray needs Ray: make setup EXTRAS=cluster (or pip install -e '
                '".[cluster]"), '
                             "or unset EXECUTOR") from None
        share = os.environ.get("RAY_GPUS_PER_RUN", "0.25")
        try:
            ok = 0 < float(share) <= 1 or float(share).is_integer() and float(share) > 1
        except ValueError:
            ok = False
        if not ok:
            raise StoreError(
                f"RAY_GPUS_PER_RUN={share} is not allowed; give a fraction in (0, 1] or a whole "
                "number of GPUs per run")
        check_ray_address()
    return name


def workers(value: str | None = None) -> int:
    """``SKIPANALYSIS_WORKERS`` (or ``value``), checked: how many CPU processes run a notebook's
    runs at once.

    1 (the default): the runs train one after another in the kernel. More: on a CPU, that many
    processes with one torch thread each (joblib), which trains small nets nearly that many times
    faster than one process with as many threads (they scale poorly across threads). ``make report``
    gives the notebook it runs by itself every core this way.
    """
    text = (value if value is not None
            else os.environ.get("SKIPANALYSIS_WORKERS", "")).strip() or "1"
    if not text.isdigit() or int(text) < 1:
        raise StoreError(
            f"SKIPANALYSIS_WORKERS={text} is not allowed; give a whole number of processes, at "
            "least 1")
    return int(text)
