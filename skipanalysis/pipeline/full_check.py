"""``make full-check``: every notebook in the full profile's code path and data, capped to minutes
on a CPU.

The full profile is meant for a GPU (hours to days), so a bug in one of its code paths (warm-up at
depth 110, the step schedule, augmentation, full CIFAR-10, He et al.'s bottleneck ResNet-164, 512 px
ISBI slices with elastic copies, the Hessian maps, 224 px timings) would otherwise be found after
hours of compute. This check runs each notebook with ``--profile full`` and an overlay
(``params.OVERLAY_ENV``, written to ``<out>/caps.yaml`` and printed) that caps what costs time and
nothing else: training steps per run (one knob, ``--steps``), seeds, training-set sizes, grid and
list sizes, and U-Net's width (base 8: every evaluation covers the tiles of the 512 px slices). A
grid of depths keeps its two shallowest entries, with 01's warm-up threshold moved to the deeper one
so that the warm-up path (ResNet-110's in the full profile) still runs; another list keeps its first
and last entry (rates, thickness bins, 08's models, the largest dense block). Data, resolution,
precision, schedules, augmentation and model families stay the full profile's; 08's pair (ResNet-164
against DenseNet-16) still trains.

Its verdicts are marked capped (``claims.CAPPED_MARK`` in every headline, the caps in every claim's
evidence and a note in the paper): they show that the code runs, never a finding. It writes only
into its own folder (``reports/full-check/``, its own run store inside), never ``reports/full/``.

Full CIFAR-10 comes from ``CIFAR10_DIR`` or, when that is unset, from a ``cifar10-jpeg.tar.gz``
ImageFolder export (``--cifar-archive``) unpacked into a temporary folder; with neither, the shipped
subset stands in and the check says that the full data's loader went unchecked.

``python -m skipanalysis.pipeline.full_check [--steps 4] [--out reports/full-check] [--device cpu]
[--only 01_degradation]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import corpus
from ..params import OVERLAY_ENV, ParameterError
from . import runner
from .runner import resolved_parameters

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
# 01 first (02 and 07 reuse its nets), 04 last (its timings share the CPU with nothing), as make
# report runs them.
ORDER = ("01_degradation", "02_gradient_flow", "03_equivalence", "05_transformer_norm",
         "06_unet_skips",
         "07_loss_landscape", "08_param_efficiency", "04_cost")
STEPS = 4  # training steps per run: the knob
SEEDS = 2  # the fewest a seed-paired rule reads
N_TRAIN, N_TEST = 256, 128  # images drawn from the full CIFAR-10 (still read whole, then sampled)


def ends(values: list) -> list:
    """A list's first and last entry (the whole list when it has at most two): the extremes' code
    paths run."""
    return list(values) if len(values) <= 2 else [values[0], values[-1]]


def shallow(depths: list) -> list:
    """A depth grid's two shallowest entries: the deepest nets cost most and run no other code."""
    return sorted(depths)[:2]


def full_parameters() -> dict[str, dict[str, Any]]:
    """Each notebook's parameters in the full profile: its defaults with full.yaml's section on
    top."""
    return {name: resolved_parameters(NOTEBOOKS / f"{name}.ipynb", "full") for name in ORDER}


def caps(full: dict[str, dict[str, Any]], steps: int = STEPS) -> dict[str, dict[str, Any]]:
    """The overlay for each notebook: what the capped check changes in its full parameters ``full``
    (``full_parameters``).

    Epochs are set so that a run trains about ``steps`` steps at the full profile's batch size on
    the capped training set; warm-up lasts half of them.
    """
    if steps < 1:
        raise ParameterError(f"steps={steps!r} is not allowed; expected an integer >= 1")
    f = {name: full.get(name, {}) for name in ORDER}
    epochs = lambda batch, n: round(steps * batch / n, 4)  # noqa: E731
    warm = max(1, steps // 2)
    d01, d02, d05 = f["01_degradation"], f["02_gradient_flow"], f["05_transformer_norm"]
    d06, d08 = f["06_unet_skips"], f["08_param_efficiency"]
    tiles = d06["train_slices"] * (d06["size"] // d06["tile"]) ** 2 * (
        1 + min(1, d06.get("elastic_copies", 0)))
    return {
        "01_degradation": {
            "n_train": N_TRAIN, "n_test": N_TEST, "depths": shallow(d01["depths"]), "seeds": SEEDS,
            "highway_seeds": SEEDS, "epochs": epochs(d01["batch_size"], N_TRAIN),
            "construct_epochs": epochs(d01["batch_size"], N_TRAIN), "warmup_steps": warm,
            "warmup_min_depth": shallow(d01["depths"])[-1], "eval_points": 2},
        "02_gradient_flow": {
            "seeds": SEEDS, "n_train": N_TRAIN, "n_test": N_TEST, "depths": shallow(d02["depths"]),
            "grad_batches": 1,
            "train_depth": min(d02["depths"]),
            "epochs": epochs(d02["batch_size"], N_TRAIN),
            "shatter_depths": shallow(d02["shatter_depths"]),
            "shatter_points": 16, "path_samples": 2, "sweep_layers": 8,
            "sweep_every": ends(d02["sweep_every"]),
            "sweep_epochs": epochs(d02["batch_size"], N_TRAIN)},
        "03_equivalence": {
            "conv_trials": 20, "max_inputs": 4, "max_layers": 6, "n_train": N_TRAIN,
            "n_test": N_TEST,
            "epochs": 1, "n_blocks": 3, "n_probe": 32, "seeds": SEEDS},
        "05_transformer_norm": {
            "n_train": 128, "n_test": 32, "grad_depths": shallow(d05["grad_depths"]),
            "grad_seeds": SEEDS,
            "grad_batches": 1, "lrs": ends(d05["lrs"]), "warmup": warm, "seeds": SEEDS,
            "epochs": epochs(d05["batch_size"], 128), "t3_depths": shallow(d05["t3_depths"]),
            "t3_seeds": SEEDS,
            "t3_warmup": warm if d05.get("t3_warmup") else 0,
            "t3_epochs": epochs(d05["batch_size"], 128)},
        "06_unet_skips": {
            "seeds": SEEDS, "epochs": round(steps * d06["batch_size"] / tiles, 4), "base": 8,
            "elastic_copies": min(1, d06.get("elastic_copies", 0)),
            "thickness_bins": ends(d06["thickness_bins"])},
        "07_loss_landscape": {
            "seeds": SEEDS, "eval_images": 64, "grid": 5, "pairs": 1, "slice_points": 5,
            "hessian_grid": 1},
        "08_param_efficiency": {
            "n_train": N_TRAIN, "n_val": 64, "n_test": N_TEST, "models": ends(d08["models"]),
            "small_sizes": [N_TRAIN // 2], "seeds": SEEDS, "lr_seeds": 1, "steps": steps},
        "04_cost": {
            "batch_sizes": first(f["04_cost"]["batch_sizes"]), "repeats": 5, "min_run_time": 0.05,
            "block_layers": f["04_cost"]["block_layers"][:2] + f["04_cost"]["block_layers"][-1:],
            "block_batch": 2},
    }


def first(values: list) -> list:
    """A list's first entry alone (04's batch sizes: batch 1 keeps the timing path, larger ones only
    cost time)."""
    return list(values[:1])


def cifar10_folder(archive: Path, into: Path) -> Path:
    """Unpack a CIFAR-10 ImageFolder export (``<name>/{train,test}/<class>/``) into ``into``; its
    folder.

    Raises:
        ParameterError: the archive is missing or holds no ``train/`` and ``test/`` folders.
    """
    if not archive.is_file():
        raise ParameterError(f"--cifar-archive {archive} does not exist; set CIFAR10_DIR to a full "
                             "CIFAR-10 (torchvision's cifar-10-batches-py or an ImageFolder with "
                             "train/ and test/), or give the JPEG export archive "
                             "(../shared/datasets/cifar10-jpeg.tar.gz)")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    found = [p.parent for p in into.rglob("train") if (p.parent / "test").is_dir()]
    if not found:
        raise ParameterError(f"--cifar-archive {archive}: no train/ and test/ class folders inside")
    return found[0]


def real_text(overlay: dict[str, Any]) -> str:
    """The full profile's text for 05 built if missing (``corpus.build``), in a line to print; when
    it cannot be (no registry at hand), 05's ``overlay`` turns the text task off and the line says
    so."""
    try:
        return f"05's real text: {corpus.build()}"
    except (RuntimeError, ValueError, OSError) as exc:
        overlay["text_path"] = ""
        return f"05's real text could not be built ({exc}): its text task is not checked"


def check_overlay(overlay: dict[str, dict[str, Any]], device: str) -> None:
    """Every notebook's full parameters with ``overlay`` on top validate (one line naming the first
    that does not), before anything runs."""
    for name in ORDER:
        try:
            runner.notebook_parameters(NOTEBOOKS / f"{name}.ipynb", "full", device, "/tmp",
                                       overrides=overlay[name])
        except ParameterError as exc:
            raise ParameterError(f"{name} capped: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=STEPS,
                    help="training steps per run (the cap's knob)")
    ap.add_argument("--out", default=str(REPO / "reports" / "full-check"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cifar-archive",
                    default=str(REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"),
                    help="used when CIFAR10_DIR is unset")
    ap.add_argument("--only", action="append", choices=ORDER,
                    help="run these notebooks only (repeatable)")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    if out == (REPO / "reports" / "full").resolve():
        print("[full-check] bad input: --out must not be reports/full (the full profile's own "
              "report)", file=sys.stderr)
        return 2
    try:
        overlay = caps(full_parameters(), args.steps)
        check_overlay(overlay, args.device)
    except ParameterError as exc:
        print(f"[full-check] bad input: {exc}", file=sys.stderr)
        return 2
    names = [n for n in ORDER if not args.only or n in args.only]
    if "05_transformer_norm" in names:
        print(f"[full-check] {real_text(overlay['05_transformer_norm'])}", flush=True)
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    (out / "caps.yaml").write_text(
        "# make full-check: the full profile (notebooks/params/full.yaml) with these caps, "
        f"{args.steps} training steps a "
        "run\n" + yaml.safe_dump(overlay, sort_keys=False, default_flow_style=None),
        encoding="utf-8")
    print(f"[full-check] the full profile capped ({out / 'caps.yaml'}):")
    for name in ORDER:
        print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in overlay[name].items()))
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="full-check-cifar10-") as tmp:
        env = {**os.environ, OVERLAY_ENV: str(out / "caps.yaml"),
               "SKIPANALYSIS_RUNS": str(out / "runs")}
        if not env.get("CIFAR10_DIR") and Path(args.cifar_archive).is_file():
            env["CIFAR10_DIR"] = str(cifar10_folder(Path(args.cifar_archive), Path(tmp)))
        data = f"full CIFAR-10 from CIFAR10_DIR={env['CIFAR10_DIR']}" if env.get(
            "CIFAR10_DIR") else (
            "the shipped CIFAR-10 subset: no full CIFAR-10 here (CIFAR10_DIR is unset and "
            f"{args.cifar_archive} is missing), so the full data's loader is not checked; set "
            "CIFAR10_DIR to check it")
        print(f"[full-check] {data}", flush=True)
        for name in names:
            t0 = time.perf_counter()
            rc = subprocess.call([sys.executable, "-m", "skipanalysis.pipeline.runner",
                                  str(NOTEBOOKS / f"{name}.ipynb"), str(out / f"{name}.ipynb"),
                                  "--profile", "full",
                                  "--device", args.device, "--alone", "--no-progress"], env=env,
                                 cwd=REPO)
            timings[name] = round(time.perf_counter() - t0, 1)
            if rc:
                print(f"[full-check] FAILED: {name} (exit {rc}) after {timings[name]:.0f} s",
                      file=sys.stderr)
                return rc
        rc = subprocess.call(
            [sys.executable, "-m", "skipanalysis.pipeline.report", "html", "--reports", str(out),
                              "--profile", "full", *names], env=env, cwd=REPO)
        if rc:
            return rc
    (out / "timings.json").write_text(
        json.dumps({"steps": args.steps, "data": data, "seconds": timings}, indent=1)
                                      + "\n")
    print("[full-check] wall time per notebook: "
          + ", ".join(f"{n} {s:.0f} s" for n, s in timings.items())
          + f"; {sum(timings.values()) / 60:.1f} min in all. Verdicts are marked capped: a code "
            "path check.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
