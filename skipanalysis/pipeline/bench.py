"""``make bench``: images per second of the project's training loop against a bare torch loop.

For ResNet-20 and plain-56 (He et al. 2016's CIFAR nets) at 8 px (the quick
profile's images), 16 and 32 px, on the machine that runs it: one optimiser step
per batch of random images, SGD with Nesterov momentum (the quick recipe), no
evaluation in the timed region. Each size runs in fp32 at batch 32, in bf16
autocast at batch 128, and in bf16 with channels_last, so the table also shows
where bf16 and channels_last win on this machine. The bare loop is the few
lines any PyTorch tutorial writes (forward, loss, zero_grad, backward, step);
``skipanalysis.train.train`` runs the same steps with its schedule, logging,
divergence check and progress bar. Both use the same precision, batch size and
memory format, so the ratio is the loop's own overhead. Timings use
``torch.utils.benchmark.Timer``: rounds of one run of each loop, interleaved,
so drift in the machine's speed hits both alike; the ratio is the median over
rounds of each round's paired ratio (bare time / loop time), printed with its
range over rounds, and images/s are from the median times.

    python -m skipanalysis.pipeline.bench [--steps 12] [--rounds 5] [--device cpu] [--sizes 8,16,32]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import pandas as pd
import torch
import torch.nn.functional as F
import torch.utils.benchmark as benchmark
from torch.utils.data import TensorDataset

from .. import train as tr
from ..hardware import select_device
from ..measure.timing import paired_ratio
from ..models import cifar_name, create

CASES = [("residual", 20), ("plain", 56)]
# (precision, batch, channels_last), at every size: whether channels_last wins is the machine's to
# say
SETTINGS = [("fp32", 32, False), ("bf16", 128, False), ("bf16", 128, True)]


def settings_for(size: int) -> list[tuple[str, int, bool]]:
    return list(SETTINGS)


def _bare_loop(model, x, y, steps, batch, precision, channels_last, device):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4,
                          nesterov=True)
    # one shuffled epoch, as any training loop draws it
    order = torch.randperm(len(x), device=x.device)
    for i in range(steps):
        idx = order[i * batch:(i + 1) * batch]
        xb, yb = x[idx], y[idx]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with tr.autocast(device, precision):
            loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def measure(kind: str, depth: int, size: int, precision: str, batch: int, channels_last: bool,
            steps: int,
            device: torch.device, rounds: int = 5) -> dict:
    """Images/s of the bare loop and of ``train.train`` for one net and setting."""
    torch.manual_seed(0)
    n = steps * batch
    x = torch.randn(n, 3, size, size, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    data = TensorDataset(x, y)
    cfg = tr.TrainConfig(epochs=1, batch_size=batch, lr=0.01, schedule="cosine",
                         precision=precision,
                         channels_last=channels_last, nesterov=True, progress=False,
                         final_eval=False)
    model = create(cifar_name(kind, depth)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    timers = {
        "bare": benchmark.Timer("f(model, x, y, steps, batch, p, cl, d)", globals={
            "f": _bare_loop, "model": model, "x": x, "y": y, "steps": steps, "batch": batch,
            "p": precision,
            "cl": channels_last, "d": device}),
        "loop": benchmark.Timer("f(model, data, cfg, None, d)", globals={
            "f": tr.train, "model": model, "data": data, "cfg": cfg, "d": device}),
    }
    _bare_loop(model, x, y, 2, batch, precision, channels_last, device)  # warm-up
    out = {"net": f"{kind}-{depth}", "px": size, "precision": precision, "batch": batch,
           "channels_last": channels_last}
    times = {"bare": [], "loop": []}
    for _ in range(rounds):  # interleaved, so drift in the machine's speed hits both loops alike
        for name in ("bare", "loop"):
            times[name].append(timers[name].timeit(1).median)
    for name, ts in times.items():
        out[f"{name}_img_s"] = n / statistics.median(ts)
    out["loop/bare"], out["lowest"], out["highest"] = paired_ratio(times["bare"], times["loop"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skipanalysis.pipeline.bench",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12,
                    help="optimiser steps per timed run (default 12)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="interleaved rounds of both loops per row (default 5)")
    ap.add_argument("--device", default="cpu", help="auto | cpu | cuda | mps | xla (default cpu)")
    ap.add_argument("--sizes", default="8,16,32",
                    help="image sizes, comma-separated (default 8,16,32)")
    args = ap.parse_args(argv)
    if args.steps < 2:
        print(f"error: --steps={args.steps} is not allowed; give at least 2", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print(f"error: --rounds={args.rounds} is not allowed; give at least 1", file=sys.stderr)
        return 2
    device = select_device(args.device)
    rows = [measure(kind, depth, size, p, b, cl, args.steps, device, args.rounds)
            for kind, depth in CASES for size in (int(s) for s in args.sizes.split(","))
            for p, b, cl in settings_for(size)]
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"{args.rounds} rounds a row; worst loop/bare (median over rounds) "
          f"{table['loop/bare'].min():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
