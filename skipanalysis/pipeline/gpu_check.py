"""``make gpu-check``: what one GPU does with this study, measured in a few minutes.

1. Notebook 04's measurements on the card (its quick parameters) written as this machine's hardware
   file, so C6 and C8 read the GPU beside the kept CPU files (``make gpu-check`` copies it to
   ``data/hardware/``).
2. Notebook 01's nets (plain, residual and highway at depths 20, 56 and 110) trained with the full
   profile's recipe at 32 px on the shipped CIFAR-10 subset (or ``CIFAR10_DIR``) for a capped number
   of steps: first one run at a time, then ``share`` runs at once on the card (Ray with
   ``RAY_GPUS_PER_RUN`` when ``EXECUTOR=ray``, else that many processes). It prints images/s per run
   and for the card.
3. From those rates, the wall time of 01's full profile on this card (its runs counted from
   ``full.yaml``), alone and shared; 02 and 07 reuse 01's nets.
4. Every notebook's full profile in hours on this card (``estimate``: its runs counted, its nets
   timed for a few steps at their batch), kept in ``data/estimates/`` with ``--keep-estimate`` so
   that ``make plan PROFILE=full`` on any machine prints the card's hours beside its own. ``--tiny``
   times 05's depth sweep only.

Everything goes to ``--out`` (``gpu-check.json``, ``hardware/<machine>.json``). ``--tiny`` runs the
same path at smoke size on any device (the test runs it on a CPU).

    python -m skipanalysis.pipeline.gpu_check --device cuda --out reports/gpu-check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import runs
from ..executors import StoreError, check_executor, executor_name
from ..hardware import fingerprint
from ..measure import machines
from ..studies import cost
from ..studies import degradation as dg
from . import estimate as full_estimate
from .estimate_work import work_01
from .runner import resolved_parameters

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
KINDS = ("plain", "residual", "highway")
DEPTHS = (20, 56, 110)


def _size(tiny: bool, steps: int | None) -> dict[str, Any]:
    """The check's scale: 04's profile, the 01 overrides, the nets and the steps per run."""
    if tiny:
        return {"profile04": "smoke", "steps": steps or 2, "depths": (8, 14), "n_train": 256,
                "n_test": 64,
                "image_size": 8}
    return {"profile04": "quick", "steps": steps or 400, "depths": DEPTHS, "n_train": 10_000,
            "n_test": 2_000,
            "image_size": 32}


def hardware_file(device, out: Path, profile: str, commit: str | None = None) -> Path:
    """Notebook 04's measurements on ``device`` with its ``profile`` parameters, as this machine's
    hardware file."""

    p = {**resolved_parameters(NOTEBOOKS / "04_cost.ipynb", profile), "profile": profile}
    p["block_layers"] = sorted(p["block_layers"])
    fp = fingerprint(device)
    m = cost.measurements(p, device, fp, out, None)
    numbers = {"profile": profile, "repeats": p["repeats"], **m["numbers"]}
    return machines.write_hardware_file(out / "hardware", fp, numbers, commit=commit)


def full_runs(p: Mapping[str, Any], n_train: int = 50_000) -> pd.DataFrame:
    """Notebook 01's training runs under its full parameters ``p`` (``estimate_work.work_01``, on
    ``n_train`` images): one row per (kind, depth, what) with the number of runs and the steps of
    each."""
    work = work_01({**p, "n_train": n_train})
    return pd.DataFrame(
        [{"kind": w.net.family, "depth": w.net.depth, "runs": w.runs, "steps": w.steps,
                          "what": w.what} for w in work]).assign(
                              images=lambda t: t.runs * t.steps * p["batch_size"])


def seconds_per_image(rates: pd.DataFrame, kind: str, depth: int, column: str) -> float:
    """Seconds per training image of a ``kind`` net at ``depth``: linear in depth through the
    measured depths (extended linearly beyond them), from ``rates[column]`` in images/s."""
    r = rates[rates.kind == kind].sort_values("depth")
    return full_estimate.depth_fit(r.depth.tolist(), (1.0 / r[column]).tolist(), depth)


def estimate(rates: pd.DataFrame, runs: pd.DataFrame, share: int) -> dict[str, float]:
    """Hours of 01's full profile on the measured card: runs one at a time, and ``share`` at
    once."""
    def hours(column: str) -> float:
        return sum(r.images * seconds_per_image(rates, r.kind, r.depth, column)
                   for r in runs.itertuples()) / 3600

    return {"alone_hours": hours("alone_images_s"),
            "shared_hours": hours("shared_images_s") / share,
            "runs": int(runs.runs.sum()), "images": int(runs.images.sum())}


def training_rates(device, steps: int, depths, n_train: int, n_test: int, image_size: int,
                   share: int,
                   executor: str) -> tuple[pd.DataFrame, dict[str, float]]:
    """01's nets trained with the full recipe for ``steps`` steps each: once one at a time, once
    ``share`` at a time; images/s per run in each way and the card's total when shared."""
    import torch

    p = resolved_parameters(NOTEBOOKS / "01_degradation.ipynb", "full")
    p = {**p, "n_train": n_train, "n_test": n_test, "image_size": image_size,
         # the full recipe (logging, evaluations), capped steps
         "epochs": steps / -(-n_train // p["batch_size"])}
    prep = dg.prepare(p, "cpu")
    cfg = prep.cfg
    ids = dg.data_fingerprints(prep.train, prep.test)
    configs = [dg.run_config(k, d, 0, p["lrs"][0], cfg, prep.train, ids, width=p["width"],
                             gate_bias=p["gate_bias"], warmup_min_depth=p["warmup_min_depth"],
                             augment=prep.augment,
                             device=device) for k in KINDS for d in depths]
    shared = (prep.train, None, prep.augment)
    images = steps * p["batch_size"]
    warm = dict(configs[0],
                recipe={**configs[0]["recipe"], "epochs": configs[0]["recipe"]["epochs"] / steps})
    runs.run_grid([warm], dg.train_run, shared, None, torch.device(device), "gpu-check: warm-up",
                  executor="local")
    # the warm-up (one step) paid for this process's CUDA start, which the first timed run would
    # carry
    out = {}
    for way, n in (("alone", 1), ("shared", share)):
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        records = runs.run_grid(configs, dg.train_run, shared, None, torch.device(device),
                                f"gpu-check: {way}",
                                executor="ray" if n > 1 and executor == "ray" else "local",
                                processes=n)
        out[way] = ([images / r["seconds"] for r in records], time.perf_counter() - t0)
    rates = pd.DataFrame(
        {"kind": [c["kind"] for c in configs], "depth": [c["depth"] for c in configs],
                          "alone_images_s": out["alone"][0], "shared_images_s": out["shared"][0]})
    card = {"alone_images_s": len(configs) * images / out["alone"][1],
            "shared_images_s": len(configs) * images / out["shared"][1],
            "overlapping_images_s": share * float(np.mean(out["shared"][0])), "steps": steps,
            "batch": p["batch_size"],
            "share": share, "executor": ("ray" if executor == "ray" else "processes") if share > 1
            else "local",
            "precision": cfg.precision,
            "data": prep.about["data"]}
    return rates, card


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda",
                    help="cuda (the check) or cpu (with --tiny: the code path)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "gpu-check"),
                    help="folder for gpu-check.json and hardware/")
    ap.add_argument("--steps", type=int, default=None,
                    help="steps per training run (default 400; --tiny: 2)")
    ap.add_argument("--share", type=int, default=None,
                    help="runs sharing the card at once (default: 1 / "
                                                            "RAY_GPUS_PER_RUN)")
    ap.add_argument("--tiny", action="store_true",
                    help="smoke size: the code path in seconds, on any device")
    ap.add_argument("--commit", default=None,
                    help="the project's commit for the hardware file (default: git's)")
    ap.add_argument("--keep", default=None,
                    help="copy the hardware file here too (make gpu-check: data/hardware)")
    ap.add_argument("--keep-estimate", default=None,
                    help="keep the full profile's hours here too (make gpu-check: "
                                                          "data/estimates)")
    args = ap.parse_args(argv)
    import torch

    kind = args.device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        print(f"[gpu-check] --device {args.device}: torch sees no CUDA device here; on a CPU run "
              "make gpu-check DEVICE=cpu TINY=1 (the code path at smoke size)", file=sys.stderr)
        return 2
    if kind not in ("cuda", "cpu"):
        print(f"[gpu-check] --device {args.device} is not allowed; choose cuda or cpu",
              file=sys.stderr)
        return 2
    if args.steps is not None and args.steps < 1:
        print(
            f"[gpu-check] --steps {args.steps} is not allowed; give a whole number of steps, at "
            "least 1",
              file=sys.stderr)
        return 2
    try:
        executor = executor_name()
        if executor == "ray":
            check_executor()
        gpus = float(os.environ.get("RAY_GPUS_PER_RUN", "0.25"))
    except (StoreError, ValueError) as exc:
        print(f"[gpu-check] {exc}", file=sys.stderr)
        return 2
    share = args.share if args.share is not None else max(1, round(1 / gpus)) if gpus > 0 else 1
    if share < 1:
        print(f"[gpu-check] --share {args.share} is not allowed; give at least 1", file=sys.stderr)
        return 2
    size = _size(args.tiny, args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    os.environ.setdefault("SKIPANALYSIS_PROGRESS", "0")  # run counts only, no per-step bars
    t0 = time.perf_counter()
    try:  # a failure here must not cost the training rates (a GPU's minutes are few)
        hw = hardware_file(device, out, size["profile04"], args.commit)
    except Exception:
        traceback.print_exc()
        hw = None
    hw_s = time.perf_counter() - t0
    print(
        f"[gpu-check] notebook 04's measurements ({size['profile04']} parameters) in {hw_s:.0f} s: "
        f"{hw}")
    if args.keep and hw is not None:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        shutil.copy2(hw, Path(args.keep) / hw.name)
        print(f"[gpu-check] kept {Path(args.keep) / hw.name} (commit it: C6 and C8 read it)")
    rates, card = training_rates(device, size["steps"], size["depths"], size["n_train"],
                                 size["n_test"],
                                 size["image_size"], share, executor)
    print(f"[gpu-check] 01's nets, {card['steps']} steps of batch {card['batch']} each "
          f"({card['data']}, {card['precision']}): images/s per run, one at a time and {share} at "
          f"once ({card['executor']})")
    print(rates.round(0).to_string(index=False))
    print(f"[gpu-check] the card: {card['alone_images_s']:,.0f} images/s one run at a time, "
          f"{card['shared_images_s']:,.0f} with {share} sharing it (wall time, the processes' "
          f"start included), {card['overlapping_images_s']:,.0f} from the runs' own rates while "
          f"{share} overlap")

    full = resolved_parameters(NOTEBOOKS / "01_degradation.ipynb", "full")
    plan = full_runs(full)
    est = estimate(rates, plan, share)
    print("[gpu-check] "
          f"{'(tiny: nets and sizes not those of the full profile) ' if args.tiny else ''}01's "
          f"full profile here ({est['runs']} runs, {est['images'] / 1e9:.2f} billion images; 02 "
          f"and 07 reuse its nets): {est['alone_hours']:.1f} h one run at a time, "
          f"{est['shared_hours']:.1f} h with {share} sharing the card.")
    try:  # every notebook's full profile on this card; a failure here must not cost the rates above
        work = full_estimate.full_work(("05_transformer_norm",))
        work = ([w for w in work if w.what == "T3: depth sweep"] if args.tiny
                else full_estimate.full_work())
        priced = full_estimate.price(work, device, 0.01 if args.tiny else 0.2)
        summary = full_estimate.table(priced)
        print(full_estimate.render(priced, summary, device))
        full_estimate.save(out / "estimate.json", device, priced, summary)
        if args.keep_estimate and not args.tiny:
            kept = full_estimate.save(
                Path(args.keep_estimate) / f"{machines.machine_id(fingerprint(device))}.json",
                                      device, priced, summary)
            print(
                f"[gpu-check] kept {kept} (commit it: PROFILE=full make plan prints it beside any "
                "machine's hours)")
    except Exception:
        traceback.print_exc()
        summary = None
    report = {"device": str(device), "hardware_file": hw.name if hw is not None else None,
              "hardware_seconds": hw_s,
              "card": card, "rates": rates.to_dict("records"),
              "full_01_runs": plan.to_dict("records"),
              "estimate_01": est, "tiny": args.tiny, "seconds": time.perf_counter() - t0,
              "estimate": None if summary is None else summary.reset_index().to_dict("records")}
    (out / "gpu-check.json").write_text(json.dumps(report, indent=1, default=str) + "\n",
                                        encoding="utf-8")
    print(f"[gpu-check] wrote {out / 'gpu-check.json'} in {report['seconds']:.0f} s")
    return 0 if hw is not None else 1


if __name__ == "__main__":
    sys.exit(main())
