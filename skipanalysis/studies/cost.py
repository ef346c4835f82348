"""Notebook 04: what connection patterns cost. Parameters and FLOPs of ResNet-50 and DenseNet-121
(C1, C2), the work of a dense layer's 1x1 bottleneck (C4), activation memory as blocks deepen, naive
and memory-efficient (C3, C7), time per training step and weight-load time by device (C5, C6, C8),
and the roofline. The measuring tools are in ``skipanalysis.measure`` (conventions stated there);
the figures in ``skipanalysis.figures.cost``. The claims read from these measurements are
``cost_claims``'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import keys, runs
from ..measure.flops import (
    bytes_moved,
    count_params,
    fvcore_by_module,
    fvcore_flops,
    torch_flops,
    torchvision_model,
)
from ..measure.machines import machine_id
from ..measure.memory import (
    PLEISS_PEAK_GB,
    EfficientDenseBlock,
    ResidualStage,
    allocator_peaks,
    saved_bytes,
)
from ..measure.timing import interleaved_times, measured_peaks, step_fn, summary
from ..models import create
from ..models.blocks import BasicBlock
from ..models.densenet import DenseBlock


def poly_fits(x: list[float], y: list[float]) -> dict[str, float]:
    """Least-squares linear and quadratic fits of y on x: coefficients and R^2 of each."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    out = {}
    for deg, name in ((1, "linear"), (2, "quadratic")):
        coef = np.polyfit(x, y, deg)
        pred = np.polyval(coef, x)
        ss_res, ss_tot = float(((y - pred) ** 2).sum()), float(((y - y.mean()) ** 2).sum())
        out[f"{name}_r2"] = 1 - ss_res / ss_tot if ss_tot else 1.0
        out[f"{name}_coef"] = [float(c) for c in coef]
    # share of the quadratic term in the fitted value at the largest x
    a2 = out["quadratic_coef"][0]
    out["quadratic_share_at_max"] = float(
        a2 * x.max() ** 2 / np.polyval(out["quadratic_coef"], x.max()))
    return out


# --- the notebook's studies -----------------------------------------------------------------------

def count_table(names: list[str], size: int) -> pd.DataFrame:
    """Parameters, forward FLOPs under both counters, and the bytes-moved estimate of torchvision
    models at ``size`` px.

    Columns name their convention: fvcore GMAC (one per multiply-add), flop_counter GFLOP (two per
    multiply-add), and their ratio on convolutions and linear layers (1 when the counters agree up
    to the factor of 2).
    """
    x = torch.randn(1, 3, size, size)
    rows = []
    for name in names:
        m = torchvision_model(name)
        fv = fvcore_flops(m, x)
        conv_mm = fv.get("conv", 0) + fv.get("linear", 0) + fv.get("matmul", 0)
        rows.append({"model": name, "parameters": count_params(m),
                     "fvcore GMAC (1/multiply-add)": fv["total"] / 1e9,
                     "fvcore conv+linear GMAC": conv_mm / 1e9,
                     "flop_counter GFLOP (2/multiply-add)": torch_flops(m, x) / 1e9,
                     "bytes moved (MB, estimate)": bytes_moved(m, x) / 1e6})
    counts = pd.DataFrame(rows).set_index("model")
    counts["flop_counter / (2 x fvcore conv+linear)"] = (
        counts["flop_counter GFLOP (2/multiply-add)"]
                                                         / (2 * counts["fvcore conv+linear GMAC"]))
    return counts


def memory_sweep(layers: list[int], growth: int, size: int, batch: int,
                 device: torch.device | str = "cpu",
                 repeats: int = 7, min_run_time: float = 0.05) -> pd.DataFrame:
    """Saved-for-backward bytes and forward+backward time of a dense block, its checkpointed twin
    and a residual stage.

    The residual stage has the dense block's input width (2k), so its per-layer activations match
    the block's first layer. Bytes are exact counts (``saved_bytes``); times come from
    ``interleaved_times`` (the three blocks of a depth interleaved, ``times`` holds the per-round
    samples). On CUDA the allocator's peak is recorded beside the counted bytes.
    """
    device = torch.device(device)
    rows = []
    for n in layers:
        x = torch.randn(batch, 2 * growth, size, size, device=device)
        blocks = {"dense": DenseBlock(2 * growth, n, growth),
                  "dense (checkpointed)": EfficientDenseBlock(
            2 * growth, n, growth), "residual": ResidualStage(2 * growth, n)}
        steps, found = {}, {}
        for name, module in blocks.items():
            module = module.to(device)
            row = {"block": name, "layers": n, "saved_bytes": saved_bytes(module, x)}

            def step(module=module):
                module.zero_grad(set_to_none=True)
                # timed in this iteration
                module(x.requires_grad_(True)).sum().backward()  # noqa: B023

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
                step()
                row["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device) - base
            steps[name], found[name] = step, row
        for name, times in interleaved_times(steps, device, repeats, min_run_time).items():
            s = summary(times)
            rows.append({**found[name], "fwd_bwd_s": s["median_s"], "times": s["times"]})
    return pd.DataFrame(rows)


# name: depth
MEMORY_MODELS = {"resnet50": 50, "resnet101": 101, "densenet121": 121, "densenet169": 169}


def model_memory(size: int, batch: int = 1, models: dict[str, int] = MEMORY_MODELS) -> pd.DataFrame:
    """Whole-model activation memory against depth: bytes saved for backward by one training-mode
    forward pass of each torchvision model (``saved_bytes``, exact, any device) on a random
    ``batch`` x 3 x ``size`` x ``size`` input, with its depth and parameters; the whole-network side
    of the block-level counts (C3)."""
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    rows = []
    for name, depth in models.items():
        m = torchvision_model(name)
        rows.append({"model": name, "family": "DenseNet" if name.startswith("densenet")
                     else "ResNet", "depth": depth,
                     "parameters": count_params(m), "saved_bytes": saved_bytes(m, x), "size": size,
                     "batch": batch})
    return pd.DataFrame(rows)


def dense_layer_flops(n_layers: int, growth: int, size: int) -> pd.DataFrame:
    """Per layer of a DenseNet-BC block: input width and fvcore multiply-adds of the 1x1 and 3x3
    convolutions."""
    block = DenseBlock(2 * growth, n_layers, growth)
    by_module = fvcore_by_module(block, torch.randn(1, 2 * growth, size, size))
    rows = []
    for i, layer in enumerate(block.layers):
        one = by_module.get(f"layers.{i}.bottleneck.2", 0.0)
        three = by_module.get(f"layers.{i}.conv.2", 0.0)
        rows.append({"layer": i + 1, "in_channels": layer.in_ch, "macs_1x1": one, "macs_3x3": three,
                     "share_1x1": one / (one + three)})
    return pd.DataFrame(rows)


def addition_share(width: int, size: int, batch: int, device: torch.device | str = "cpu",
                   repeats: int = 7,
                   min_run_time: float = 0.1) -> dict[str, Any]:
    """Cost of a residual addition against its whole CIFAR basic block (forward, no autograd).

    Times: the block's forward pass and the addition ``branch + x`` alone, interleaved over
    ``repeats`` rounds (``add_times``, ``block_times``). Counts: the addition's element operations
    and the block's multiply-adds (fvcore).
    """

    device = torch.device(device)
    block = BasicBlock(width, width, 1, shortcut=True).to(device).eval()
    x = torch.randn(batch, width, size, size, device=device)
    with torch.no_grad():
        branch = block.branch(x)

    def block_fwd():
        with torch.no_grad():
            block(x)

    times = interleaved_times({"block": block_fwd, "add": lambda: branch + x}, device, repeats,
                              min_run_time)
    macs = fvcore_flops(block.cpu(), x.cpu()[:1])["total"] * batch
    return {"block_s": float(np.median(times["block"])), "add_s": float(np.median(times["add"])),
            "block_macs": macs, "add_ops": x.numel(), "op_share": x.numel() / macs,
            "block_times": times["block"], "add_times": times["add"], "width": width, "size": size,
            "batch": batch}


def timing_table(names: list[str], batch_sizes: list[int], size: int, device: torch.device,
                 repeats: int = 7,
                 min_run_time: float = 0.5) -> pd.DataFrame:
    """Forward and forward+backward time per image of torchvision models, with the device's
    variants.

    For each batch size, pass and variant the models are timed in interleaved rounds
    (``interleaved_times``): ``times`` holds one sample per round, and samples of two models pair by
    round. CUDA adds channels_last and bf16 autocast variants; other devices time fp32 only.
    """
    variants = [("fp32", False, None)]
    if device.type == "cuda":
        variants += [("channels_last", True, None), ("bf16 autocast", True, torch.bfloat16)]
    models = {name: torchvision_model(name) for name in names}
    rows = []
    for batch in batch_sizes:
        for backward in (False, True):
            for label, cl, ac in variants:
                fns = {n: step_fn(m, batch, size, device, backward, cl, ac) for n,
                       m in models.items()}
                for name, times in interleaved_times(fns, device, repeats, min_run_time).items():
                    s = summary(times)
                    rows.append(
                        {"model": name, "batch": batch, "pass": "fwd+bwd" if backward else "fwd",
                                 "variant": label, **s, "per_image_s": s["median_s"] / batch,
                                 "images_per_s": batch / s["median_s"]})
    for m in models.values():
        m.zero_grad(set_to_none=True)
    return pd.DataFrame(rows)


def weight_load_times(names: list[str], device: torch.device, repeats: int = 7,
                      min_run_time: float = 0.0,
                      folder: str | Path | None = None) -> pd.DataFrame:
    """The storage side of C8: time to load each model's saved fp32 weights from disk and put them
    on the device.

    Each model's ``state_dict`` is written once with ``torch.save`` to a temporary file in
    ``folder`` (flushed to disk). A timed call first asks the OS to drop the file's pages from its
    cache (``posix_fadvise(DONTNEED)``, where the OS has it; ``page_cache`` says which), then
    ``torch.load``s it and moves every tensor to ``device`` (a host-to-device transfer on an
    accelerator), synchronised. So a load reads the storage, as a cold start does. Beside it, the
    same cold read of the file's bytes alone (``read_*``: the storage's share of the load; the rest
    is deserialisation, which grows with the number of tensors). All arms interleaved over
    ``repeats`` rounds; ``bytes`` is the file's size.
    """
    import tempfile

    evict = hasattr(os, "posix_fadvise")
    with tempfile.TemporaryDirectory(dir=folder, prefix="weights-") as tmp:
        paths = {}
        for name in names:
            paths[name] = Path(tmp) / f"{name}.pt"
            with open(paths[name], "wb") as fh:
                torch.save(torchvision_model(name).state_dict(), fh)
                fh.flush()
                os.fsync(fh.fileno())

        def drop(path: Path) -> None:
            if evict:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)

        def loader(path: Path) -> Callable[[], None]:
            def load():
                drop(path)
                sd = torch.load(path, map_location="cpu", weights_only=True)
                for t in sd.values():
                    t.to(device)
            return load

        def reader(path: Path) -> Callable[[], None]:
            def read():
                drop(path)
                path.read_bytes()
            return read

        fns = {**{n: loader(p) for n, p in paths.items()},
               **{f"{n} (read)": reader(p) for n, p in paths.items()}}
        times = interleaved_times(fns, device, repeats, min_run_time)
        sizes = {n: p.stat().st_size for n, p in paths.items()}
    cache = ("evicted before each load (posix_fadvise)" if evict
             else "not evicted (no posix_fadvise on this OS)")
    rows = []
    for n in names:
        read = summary(times[f"{n} (read)"])
        rows.append({"model": n, "bytes": sizes[n], "page_cache": cache, **summary(times[n]),
                     "read_median_s": read["median_s"], "read_times": read["times"]})
    return pd.DataFrame(rows)


# --- machines side by side: the roofline and the training times -----------------------------------

def roofline_points(hw: dict[str, Any], flop_size: int) -> pd.DataFrame:
    """Each model's batch-largest fp32 forward pass on one machine, placed on the roofline.

    FLOPs are ``2 x`` fvcore's multiply-adds at ``flop_size`` px scaled to the timed image side
    (FLOPs and bytes both grow with the pixel count); arithmetic intensity is FLOPs over the
    estimated bytes moved (``bytes_moved``); achieved FLOP/s is FLOPs over the measured time per
    image.
    """
    num = hw["numbers"]
    cnt = pd.DataFrame(num["counts"]).set_index("model")
    tt = pd.DataFrame(num["timing"])
    tt = tt[(tt["pass"] == "fwd") & (tt.variant == "fp32") & (tt.batch == tt.batch.max())]
    scale = (num["time_size"] / flop_size) ** 2
    rows = []
    for _, row in tt.iterrows():
        c = cnt.loc[row.model]
        flops = 2 * c["fvcore GMAC (1/multiply-add)"] * 1e9 * scale
        rows.append({"model": row.model,
                     "intensity": flops / (c["bytes moved (MB, estimate)"] * 1e6 * scale),
                     "achieved_flops": flops / row.per_image_s})
    return pd.DataFrame(rows)


def side_by_side(machines: dict[str, dict], models: list[str]) -> pd.DataFrame:
    """Forward+backward fp32 time per image (ms) of ``models`` on every machine and batch size."""
    rows = []
    for mid, hw in machines.items():
        tt = pd.DataFrame(hw["numbers"]["timing"])
        tt = tt[(tt["pass"] == "fwd+bwd") & (tt.variant == "fp32") & tt.model.isin(models)]
        rows += [{"machine": mid, "model": r.model, "batch": r.batch,
                  "ms per image": 1e3 * r.per_image_s}
                 for _, r in tt.iterrows()]
    return pd.DataFrame(rows)


# --- the measurements as one stored run -----------------------------------------------------------

MEASURED = ("models", "hybrids", "flop_size", "time_size", "batch_sizes", "repeats", "min_run_time",
            "block_layers",
            # notebook 04's parameters that decide what is measured
            "growth", "block_size", "block_batch")


def measure_run(config: dict, folder: str | None = None,
                device: torch.device | str | None = None) -> tuple[dict, None]:
    """Every measurement of notebook 04 on this machine, from its config (``runs.run_grid``'s
    ``fn``): counts, per-layer work of a dense block, the addition's share, the memory sweep,
    timings, weight loading and the device's peaks, whole-model activation memory. ``folder`` holds
    the weight files that ``weight_load_times`` writes and removes."""
    dev = torch.device(device if device is not None else config["device"])
    p = config["params"]
    names = p["models"] + p["hybrids"]
    top, k, side, batch, reps, t = (max(p["block_layers"]), p["growth"], p["block_size"],
                                    p["block_batch"],
                                    p["repeats"], p["min_run_time"])
    frames = {"counts": count_table(names, p["flop_size"]).reset_index(),
              "dense_layer_work": dense_layer_flops(top, k, side),
              "memory": memory_sweep(sorted(p["block_layers"]), k, side, batch, dev, reps, t / 10),
              "timing": timing_table(names, p["batch_sizes"], p["time_size"], dev, reps, t),
              "weight_load": weight_load_times(names, dev, reps, t / 2, folder),
              # batch 2: batch norm needs two values at 1x1
              "model_memory": model_memory(p["time_size"], 2)}
    add = addition_share(64, side, 4 * batch, dev, reps, t / 5)
    return {**{key: f.to_dict("list") for key, f in frames.items()}, "addition": add,
            "peaks": measured_peaks(dev), "allocator_peaks": densenet_peaks(dev)}, None


def densenet_peaks(device: torch.device | str, batch: int = 64,
                   size: int = 32) -> dict[str, Any] | None:
    """C7 as Pleiss et al. measured it: DenseNet-BC-100 (k = 12) at batch 64, the CUDA allocator's
    peak over a training step, naive against memory-efficient (``allocator_peaks``), beside their
    published GB. None off CUDA."""
    if torch.device(device).type != "cuda":
        return None
    torch.manual_seed(0)
    peaks = allocator_peaks(create("densenet-16"), batch, size, device)
    return {"model": "DenseNet-BC-100 (k=12)", "batch": batch, "image_size": size,
            "naive_gb": peaks["naive"] / 1e9, "efficient_gb": peaks["efficient"] / 1e9,
            "published_gb": dict(PLEISS_PEAK_GB)}


def measurements(params: dict, device: torch.device, fingerprint: dict,
                 folder: str | Path | None = None,
                 store=None) -> dict[str, Any]:
    """Notebook 04's measurements on this machine: loaded from ``store`` when this machine
    (``machine_id``) has made them with these parameters (``MEASURED``), this torch and this code,
    else measured now (``measure_run``, always in this process: a timing is of the machine the
    notebook runs on, never of a Ray worker). A changed parameter, another machine or device, or an
    edit of a measuring function measures again; ``python -m skipanalysis.runs prune`` forgets them.

    Returns:
        The tables (``counts`` indexed by model, ``dense_layer_work``, ``memory``, ``timing``,
        ``weight_load``, ``model_memory``), ``addition`` and ``peaks`` as dicts, and ``numbers``:
        all of it as the hardware file keeps it.
    """

    config = {"name": "cost-measurements", "study": "cost", "machine": machine_id(fingerprint),
              "params": {k: params[k] for k in MEASURED}, "device": torch.device(device).type,
              # timings of another torch are another run
              "torch": torch.__version__, "cuda": torch.version.cuda}
    code = keys.code_fingerprint() + "".join(
        keys.fn_fingerprint(f, "")
        for f in (count_table, dense_layer_flops, memory_sweep, timing_table,
                                             weight_load_times, addition_share, measured_peaks,
                                             densenet_peaks))
    record = runs.run_grid([config], measure_run, (None if folder is None else str(folder),), store,
                           device,
                           "04: measurements", code=code, executor="local")[0]
    r = record["result"]
    out: dict[str, Any] = {key: pd.DataFrame(r[key])
                           for key in ("counts", "dense_layer_work", "memory", "timing",
                                                                 "weight_load", "model_memory")}
    out["counts"] = out["counts"].set_index("model")
    numbers = {"counts": out["counts"].reset_index().to_dict("records"),
               "dense_layer_work": out["dense_layer_work"].to_dict("records"),
               "addition": r["addition"],
               "memory": out["memory"].to_dict("records"),
               "timing": out["timing"].to_dict("records"),
               "weight_load": out["weight_load"].to_dict("records"), "peaks": r["peaks"],
               "model_memory": out["model_memory"].to_dict("records"),
               "allocator_peaks": r.get("allocator_peaks"), "time_size": params["time_size"],
               "device_type": torch.device(device).type,
               "measured": record.get("date") or record.get("finished"), "run": record["key"]}
    return {**out, "addition": r["addition"], "peaks": r["peaks"],
            "allocator_peaks": r.get("allocator_peaks"),
            "numbers": numbers}
