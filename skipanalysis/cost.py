"""What connection patterns cost: parameters, FLOPs, activation memory, time, and the roofline.

Conventions, stated once:
- fvcore counts **one FLOP per multiply-add** (MACs); ``torch.utils.flop_counter``
  counts **two** (a multiply and an add). On convolutions and matrix products
  the two agree up to that factor of 2; fvcore also counts batch-norm and
  pooling, which the PyTorch counter leaves out.
- Activation memory is the bytes autograd *saves for backward*, counted
  exactly with ``torch.autograd.graph.saved_tensors_hooks``: each saved tensor's
  storage is counted once (views and repeats deduplicated), parameters excluded.
- Time is measured with ``torch.utils.benchmark`` (median and interquartile range).

Pleiss et al. 2017 for the memory-efficient dense layer (concatenation, norm
and 1x1 convolution recomputed in backward via ``torch.utils.checkpoint``).
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .models.densenet import DenseBlock, DenseLayer
from .models.resnet import PreActBlock

# Published peak specs for devices that may not be present: labelled "projected, not measured" wherever used.
PUBLISHED_PEAKS = {
    "NVIDIA H100 SXM (bf16 dense)": {"flops": 989e12, "bytes_per_s": 3.35e12},
    "NVIDIA A100 80GB SXM (bf16 dense)": {"flops": 312e12, "bytes_per_s": 2.04e12},
    "Google TPU v4 (bf16, per chip)": {"flops": 275e12, "bytes_per_s": 1.2e12},
}


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def torchvision_model(name: str) -> nn.Module:
    """An untrained torchvision model by name (``resnet50``, ``densenet121``, ``efficientnet_b0``, ``regnet_y_400mf``)."""
    import torchvision

    return getattr(torchvision.models, name)(weights=None)


# --- FLOPs ----------------------------------------------------------------------------------------------------------

def fvcore_flops(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """fvcore's forward count (multiply-adds) by operator, with ``total``."""
    from fvcore.nn import FlopCountAnalysis

    model.eval()
    fa = FlopCountAnalysis(model, x)
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    out = {k: float(v) for k, v in fa.by_operator().items()}
    out["total"] = float(fa.total())
    return out


def fvcore_by_module(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """fvcore's forward multiply-adds per submodule name."""
    from fvcore.nn import FlopCountAnalysis

    model.eval()
    fa = FlopCountAnalysis(model, x)
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    return {k: float(v) for k, v in fa.by_module().items()}


def torch_flops(model: nn.Module, x: torch.Tensor) -> float:
    """``torch.utils.flop_counter``'s forward count (two FLOPs per multiply-add; convolutions and matmuls only)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())


def conv_macs(in_ch: int, out_ch: int, kernel: int, out_h: int, out_w: int, groups: int = 1) -> int:
    """Multiply-adds of a convolution, by hand: one per weight per output position."""
    return out_ch * out_h * out_w * (in_ch // groups) * kernel * kernel


# --- activation memory ----------------------------------------------------------------------------------------------

@contextmanager
def count_saved_bytes(params: list[torch.Tensor] | None = None):
    """Count the bytes autograd saves for backward inside the block; yields a dict filled on exit.

    Each storage is counted once (by its data pointer); tensors sharing storage
    with a parameter are left out. The dict gets ``bytes`` and ``tensors``.
    """
    param_ptrs = {p.untyped_storage().data_ptr() for p in (params or [])}
    seen: dict[int, int] = {}
    result: dict[str, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in param_ptrs and ptr not in seen:
            seen[ptr] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield result
    result["bytes"] = sum(seen.values())
    result["tensors"] = len(seen)


def saved_bytes(module: nn.Module, x: torch.Tensor) -> int:
    """Bytes saved for backward by one training-mode forward pass of ``module`` on ``x``."""
    module.train()
    x = x.detach().requires_grad_(True)
    with count_saved_bytes(list(module.parameters())) as r:
        out = module(x)
    del out
    return r["bytes"]


class EfficientDenseLayer(DenseLayer):
    """A dense layer whose concatenation, first norm and 1x1 convolution are recomputed in backward.

    Pleiss et al. 2017: only the layer's inputs (already stored by earlier
    layers) are kept, so memory grows linearly with depth instead of quadratically.
    """

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        def bottleneck(*fs):
            return self.bottleneck(torch.cat(fs, 1))

        if torch.is_grad_enabled() and any(f.requires_grad for f in features):
            mid = checkpoint(bottleneck, *features, use_reentrant=False)
        else:
            mid = bottleneck(*features)
        return self.conv(mid)


class EfficientDenseBlock(DenseBlock):
    """``DenseBlock`` built from ``EfficientDenseLayer``; same parameters, same outputs and gradients."""

    def __init__(self, in_ch: int, n_layers: int, growth: int, bn_size: int = 4):
        super().__init__(in_ch, n_layers, growth, bn_size)
        self.layers = nn.ModuleList(EfficientDenseLayer(in_ch + i * growth, growth, bn_size) for i in range(n_layers))


class ResidualStage(nn.Sequential):
    """``n_blocks`` pre-activation residual blocks of constant width (the linear-memory reference)."""

    def __init__(self, width: int, n_blocks: int):
        super().__init__(*[PreActBlock(width) for _ in range(n_blocks)])


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
    out["quadratic_share_at_max"] = float(a2 * x.max() ** 2 / np.polyval(out["quadratic_coef"], x.max()))
    return out


# --- time -----------------------------------------------------------------------------------------------------------

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


def time_it(fn: Callable[[], Any], device: torch.device, min_run_time: float = 0.5) -> dict[str, float]:
    """Median and interquartile range (seconds) of ``fn`` with ``torch.utils.benchmark``."""
    from torch.utils import benchmark

    def run():
        fn()
        sync(device)

    run()  # warm-up (allocations, kernels)
    timer = benchmark.Timer(stmt="run()", globals={"run": run})
    times = list(timer.blocked_autorange(min_run_time=min_run_time).times)
    while len(times) < 5:  # slow steps fill few blocks: take single-run measurements so the IQR means something
        times += timer.timeit(number=1).times
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return {"median_s": float(med), "iqr_s": float(q3 - q1), "runs": len(times)}


def model_step_time(model: nn.Module, batch: int, size: int, device: torch.device, backward: bool,
                    channels_last: bool = False, autocast: torch.dtype | None = None,
                    min_run_time: float = 0.5) -> dict[str, float]:
    """Time of one forward (or forward+backward) pass on a random batch; adds per-image numbers."""
    model = model.to(device).train(backward)
    x = torch.randn(batch, 3, size, size, device=device)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)

    def step():
        ctx = torch.autocast(device.type, dtype=autocast) if autocast is not None else torch.autocast(
            device.type, enabled=False)
        with ctx:
            if backward:
                model.zero_grad(set_to_none=True)
                model(x).float().sum().backward()
            else:
                with torch.no_grad():
                    model(x)

    r = time_it(step, device, min_run_time)
    r.update(per_image_s=r["median_s"] / batch, images_per_s=batch / r["median_s"])
    return r


def measured_peaks(device: torch.device, matmul_n: int = 2048, copy_mb: int = 256) -> dict[str, float]:
    """This device's peaks, measured on the spot: a large fp32 matmul (FLOP/s) and a large copy (bytes/s)."""
    a = torch.randn(matmul_n, matmul_n, device=device)
    b = torch.randn(matmul_n, matmul_n, device=device)
    t = time_it(lambda: a @ b, device, 0.3)["median_s"]
    src = torch.empty(copy_mb * 2 ** 20 // 4, device=device)
    dst = torch.empty_like(src)
    tc = time_it(lambda: dst.copy_(src), device, 0.3)["median_s"]
    return {"flops": 2 * matmul_n ** 3 / t, "bytes_per_s": 2 * src.numel() * 4 / tc}


def bytes_moved(model: nn.Module, x: torch.Tensor) -> float:
    """A simple estimate of DRAM traffic for one forward pass: every leaf module reads its input and weights
    and writes its output once (fp32). Used for arithmetic intensity = FLOPs / bytes."""
    total = [0.0]

    def hook(mod, inp, out):
        ins = sum(t.numel() for t in inp if isinstance(t, torch.Tensor))
        outs = out.numel() if isinstance(out, torch.Tensor) else 0
        total[0] += 4 * (ins + outs + sum(p.numel() for p in mod.parameters(recurse=False)))

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total[0]


# --- the hardware file ----------------------------------------------------------------------------------------------

def machine_id(fingerprint: dict[str, Any]) -> str:
    """A file-name-safe name for a machine: device type, model and threads (stable across hostnames)."""
    dev = str(fingerprint.get("device") or "cpu").split(":")[0]
    if dev == "cuda" and fingerprint.get("cuda_devices"):
        model = fingerprint["cuda_devices"][0]["name"]
    elif dev == "cpu":
        model = f"{fingerprint.get('cpu_model', 'cpu')} {fingerprint.get('torch_threads', '')}t"
    else:
        model = fingerprint.get("platform", "")
    slug = re.sub(r"[^a-z0-9]+", "-", f"{dev} {model}".lower()).strip("-")
    return slug[:80]


def write_hardware_file(folder: str | Path, fingerprint: dict[str, Any], numbers: dict[str, Any],
                        commit: str, versions: dict[str, str]) -> Path:
    """Write this machine's numbers as ``<folder>/<machine_id>.json`` (atomic)."""
    from .claims import _jsonable, write_json_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{machine_id(fingerprint)}.json"
    write_json_atomic(path, _jsonable({"machine": machine_id(fingerprint), "fingerprint": fingerprint,
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



# --- the notebook's studies -----------------------------------------------------------------------------------------

def memory_sweep(layers: list[int], growth: int, size: int, batch: int, device: torch.device | str = "cpu",
                 time_min_run: float = 0.2) -> pd.DataFrame:
    """Saved-for-backward bytes (and fwd+bwd time) of a dense block, its checkpointed twin, and a residual stage.

    The residual stage has the dense block's input width (2k), so its per-layer
    activations match the block's first layer. On CUDA the allocator's peak is
    recorded beside the counted bytes.
    """
    device = torch.device(device)
    rows = []
    for n in layers:
        x = torch.randn(batch, 2 * growth, size, size, device=device)
        for name, module in (("dense", DenseBlock(2 * growth, n, growth)),
                             ("dense (checkpointed)", EfficientDenseBlock(2 * growth, n, growth)),
                             ("residual", ResidualStage(2 * growth, n))):
            module = module.to(device)
            row = {"block": name, "layers": n, "saved_bytes": saved_bytes(module, x)}

            def step():
                module.zero_grad(set_to_none=True)
                module(x.requires_grad_(True)).sum().backward()

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
                step()
                row["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device) - base
            row["fwd_bwd_s"] = time_it(step, device, time_min_run)["median_s"]
            rows.append(row)
    return pd.DataFrame(rows)


def dense_layer_flops(n_layers: int, growth: int, size: int) -> pd.DataFrame:
    """Per layer of a DenseNet-BC block: input width and fvcore multiply-adds of the 1x1 and 3x3 convolutions."""
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
                   min_run_time: float = 0.3) -> dict[str, float]:
    """Cost of a residual addition relative to its CIFAR basic block (forward): time and operation counts."""
    from .models.resnet import BasicBlock

    device = torch.device(device)
    block = BasicBlock(width, width, 1, shortcut=True).to(device).eval()
    x = torch.randn(batch, width, size, size, device=device)
    with torch.no_grad():
        branch = block.branch(x)
    t_block = time_it(lambda: block(x), device, min_run_time)["median_s"]
    t_add = time_it(lambda: branch + x, device, min_run_time)["median_s"]
    macs = fvcore_flops(block.cpu(), x.cpu()[:1])["total"] * batch
    adds = x.numel()
    return {"block_s": t_block, "add_s": t_add, "time_share": t_add / t_block, "block_macs": macs,
            "add_ops": adds, "op_share": adds / macs}


def timing_table(names: list[str], batch_sizes: list[int], size: int, device: torch.device,
                 min_run_time: float = 0.5) -> pd.DataFrame:
    """Forward and forward+backward time per image of torchvision models, with the device's variants.

    CUDA adds channels_last and bf16 autocast variants; other devices time fp32 only.
    """
    variants = [("fp32", False, None)]
    if device.type == "cuda":
        variants += [("channels_last", True, None), ("bf16 autocast", True, torch.bfloat16)]
    rows = []
    for name in names:
        model = torchvision_model(name)
        for batch in batch_sizes:
            for backward in (False, True):
                for label, cl, ac in variants:
                    r = model_step_time(model, batch, size, device, backward, cl, ac, min_run_time)
                    rows.append({"model": name, "batch": batch, "pass": "fwd+bwd" if backward else "fwd",
                                 "variant": label, **r})
        del model
    return pd.DataFrame(rows)
