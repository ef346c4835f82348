"""Wall-clock time through ``torch.utils.benchmark`` in interleaved rounds (``interleaved_times``):
round ``r`` times every arm once, alternating their order, so a shared machine's load drift hits
every arm alike and a ratio of two arms pairs by round (``rules.cost.ratio_interval``); a training
step as one callable (``step_fn``); and the machine's measured peaks (matrix-multiply FLOP/s, copy
bandwidth) for the roofline."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn


def sync(device: torch.device) -> None:
    """Wait for the device to finish queued work (timings must include it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
    elif device.type == "xla":
        import torch_xla.core.xla_model as xm

        xm.mark_step()
        xm.wait_device_ops()


def time_it(fn: Callable[[], Any], device: torch.device,
            min_run_time: float = 0.5) -> dict[str, float]:
    """Median and interquartile range (seconds) of ``fn`` with ``torch.utils.benchmark``."""
    from torch.utils import benchmark

    def run():
        fn()
        sync(device)

    run()  # warm-up (allocations, kernels)
    timer = benchmark.Timer(stmt="run()", globals={"run": run}, num_threads=torch.get_num_threads())
    times = list(timer.blocked_autorange(min_run_time=min_run_time).times)
    # slow steps fill few blocks: take single-run measurements so the IQR means something
    while len(times) < 5:
        times += timer.timeit(number=1).times
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return {"median_s": float(med), "iqr_s": float(q3 - q1), "runs": len(times)}


def interleaved_times(fns: dict[str, Callable[[], Any]], device: torch.device, repeats: int = 7,
                      min_run_time: float = 0.2) -> dict[str, list[float]]:
    """Seconds per call of each function, one sample per round, in ``repeats`` interleaved rounds.

    Each function is run once to warm up and once to size its measurement: a round calls it
    ``number`` times in a row (enough to last ``min_run_time``) through a
    ``torch.utils.benchmark.Timer`` and records the mean. Round ``r`` measures every function once,
    in reversed order on odd rounds, so samples pair by round. The timer runs with the process's
    torch threads (``Timer`` would default to one) and without ``Timer.timeit``'s two extra warm-up
    calls per measurement (its ``_timeit``; the warm-up is done once, above), which would triple the
    cost of a slow step.
    """
    from torch.utils import benchmark

    timers, numbers = {}, {}
    for name, fn in fns.items():
        def run(fn=fn):
            fn()
            sync(device)

        run()  # warm-up (allocations, kernels)
        t0 = time.perf_counter()
        run()
        numbers[name] = max(1, math.ceil(min_run_time / max(time.perf_counter() - t0, 1e-9)))
        timers[name] = benchmark.Timer(stmt="run()", globals={"run": run},
                                       num_threads=torch.get_num_threads())
    out: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            t, n = timers[name], numbers[name]
            out[name].append(float(t._timeit(n) / n) if hasattr(t, "_timeit")
                             else float(t.timeit(n).mean))
    return out


def summary(times: list[float]) -> dict[str, Any]:
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return {"median_s": float(med), "iqr_s": float(q3 - q1), "runs": len(times),
            "times": list(times)}


def step_fn(model: nn.Module, batch: int, size: int, device: torch.device, backward: bool,
             channels_last: bool = False,
            autocast: torch.dtype | None = None) -> Callable[[], None]:
    """One forward (or forward+backward) pass of ``model`` on a fixed random batch, as a
    callable."""
    model = model.to(device).train(backward)
    x = torch.randn(batch, 3, size, size, device=device)
    # ``Module.to(memory_format=...)`` works in place: set the layout every time, so one variant
    # never leaks into
    # the next one timed with the same model
    model = model.to(memory_format=torch.channels_last if channels_last
                     else torch.contiguous_format)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)

    def step():
        ctx = (torch.autocast(device.type, dtype=autocast) if autocast is not None
               else torch.autocast(device.type, enabled=False))
        with ctx:
            if backward:
                model.zero_grad(set_to_none=True)
                model(x).float().sum().backward()
            else:
                with torch.no_grad():
                    model(x)
    return step


def model_step_time(model: nn.Module, batch: int, size: int, device: torch.device, backward: bool,
                    channels_last: bool = False, autocast: torch.dtype | None = None,
                    min_run_time: float = 0.5) -> dict[str, float]:
    """Time of one forward (or forward+backward) pass on a random batch; adds per-image numbers."""
    r = time_it(step_fn(model, batch, size, device, backward, channels_last, autocast), device,
                min_run_time)
    r.update(per_image_s=r["median_s"] / batch, images_per_s=batch / r["median_s"])
    return r


def measured_peaks(device: torch.device, matmul_n: int = 2048,
                   copy_mb: int = 256) -> dict[str, float]:
    """This device's peaks, measured on the spot: a large fp32 matmul (FLOP/s) and a large copy
    (bytes/s)."""
    a = torch.randn(matmul_n, matmul_n, device=device)
    b = torch.randn(matmul_n, matmul_n, device=device)
    t = time_it(lambda: a @ b, device, 0.3)["median_s"]
    src = torch.empty(copy_mb * 2 ** 20 // 4, device=device)
    dst = torch.empty_like(src)
    tc = time_it(lambda: dst.copy_(src), device, 0.3)["median_s"]
    return {"flops": 2 * matmul_n ** 3 / t, "bytes_per_s": 2 * src.numel() * 4 / tc}


def paired_ratio(bare_s: list[float], loop_s: list[float]) -> tuple[float, float, float]:
    """Loop speed over bare speed from interleaved rounds: each round's ``bare / loop`` time ratio,
    and their median, minimum and maximum. Pairing by round cancels drift that hits both loops of a
    round alike."""
    if len(bare_s) != len(loop_s) or not bare_s:
        raise ValueError(
            f"need the same number (at least 1) of bare and loop times, got {len(bare_s)} and "
                         f"{len(loop_s)}")
    r = [b / t for b, t in zip(bare_s, loop_s)]
    return statistics.median(r), min(r), max(r)
