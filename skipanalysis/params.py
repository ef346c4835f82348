"""Every notebook's parameters, declared once: type, range, allowed values and constraints between
them.

The runner checks a notebook's parameters (its defaults, its profile section and any ``-p``
override) against ``SPECS`` before a kernel starts; ``notebook.setup`` checks them again inside
JupyterLab, where a user edits the parameters cell by hand. Either way a bad value stops with one
line naming the parameter, the value and what is allowed, before any heavy work and before any file
changes.

A spec is a ``P`` per parameter plus ``Rule`` s over several parameters. Real numbers must be finite
(``.inf`` and ``.nan`` are refused), booleans are never integers, and a depth of a CIFAR ResNet is
``6n + 2``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

PROFILES = ("smoke", "quick", "full")
# A YAML file (notebook -> parameters) laid over the profile's sections: ``make full-check`` caps
# the full profile's
# steps, seeds, sizes and grids with it (skipanalysis.pipeline.full_check). Every reader of a
# profile section applies
# it.
OVERLAY_ENV = "SKIPANALYSIS_OVERLAY"
RESERVED = ("profile", "device", "report_dir")
SCHEDULES = ("constant", "cosine", "step", "onecycle")
PRECISIONS = ("fp32", "bf16")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps", "xla")
DATASETS = ("cifar10", "texture", "folder")
# gradients.train_study: a seed outside the sample decides, every seed
LR_CHOICES = ("held-out", "each", "first")
# picks its own best rate, or the first compared seed decides


class ParameterError(ValueError):
    """A profile, device or notebook parameter that is not allowed."""


def overlay(notebook: str) -> dict[str, Any] | None:
    """The parameters an active overlay (``SKIPANALYSIS_OVERLAY``) lays over ``notebook``'s profile
    section, or None when no overlay is active (an active overlay without a section for ``notebook``
    gives ``{}``).

    Raises:
        ParameterError: the overlay file is missing or not a mapping of notebook -> mapping.
    """
    path = os.environ.get(OVERLAY_ENV)
    if not path:
        return None
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ParameterError(
            f"{OVERLAY_ENV}={path}: not a readable YAML file ({type(exc).__name__})") from None
    return notebook_sections(data, f"{OVERLAY_ENV}={path}").get(notebook, {})


def notebook_sections(data: Any, where: str) -> dict[str, dict[str, Any]]:
    """A parameter file's content as notebook name -> its parameters (an empty section: none).

    Raises:
        ParameterError: ``data`` is not a mapping of notebook name -> mapping (``where`` names the
            file in the message).
    """
    if not isinstance(data, dict) or not all(isinstance(v, dict) or v is None
                                             for v in data.values()):
        raise ParameterError(
            f"{where}: expected a mapping of notebook name -> mapping of parameters")
    return {k: dict(v or {}) for k, v in data.items()}


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class P:
    """One parameter: ``kind`` is int, float, str, bool, ints, floats, strs or dict; bounds apply to
    every number.

    ``choices`` limits a value (or each list entry); ``min_len`` the length of a list; ``depth``
    requires CIFAR ResNet depths ``6n + 2``; ``distinct`` a list without repeats;
    ``lo_open``/``hi_open`` exclude the bound.
    """

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple | None = None
    min_len: int = 1
    depth: bool = False
    distinct: bool = False

    def expected(self) -> str:
        what = {"int": "an integer", "float": "a finite number", "str": "a string",
                "bool": "true or false",
                "ints": "a list of integers", "floats": "a list of finite numbers",
                "strs": "a list of names",
                "dict": "a mapping"}[self.kind]
        if self.kind in ("ints", "floats", "strs") and self.min_len > 1:
            what += f" (at least {self.min_len})"
        if self.depth:
            what += " of the form 6n+2 (8, 14, 20, ...)"
        if self.lo is not None or self.hi is not None:
            lo = "" if self.lo is None else f"{'>' if self.lo_open else '>='} {self.lo:g}"
            hi = "" if self.hi is None else f"{'<' if self.hi_open else '<='} {self.hi:g}"
            what += " " + " and ".join(x for x in (lo, hi) if x)
        if self.choices is not None:
            what += f" from {list(self.choices)}"
        if self.distinct:
            what += ", without repeats"
        return what

    def _scalar_ok(self, v: Any, integer: bool) -> bool:
        if self.choices is not None and self.kind in ("str", "strs"):
            return isinstance(v, str) and v in self.choices
        if integer and (isinstance(v, bool) or not isinstance(v, int)):
            return False
        if not _num(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return not (self.depth and (v < 8 or (v - 2) % 6))

    def ok(self, v: Any) -> bool:
        if self.kind == "bool":
            return isinstance(v, bool)
        if self.kind == "str":
            return isinstance(v, str) and (self.choices is None or v in self.choices)
        if self.kind == "dict":
            return isinstance(v, dict)
        if self.kind in ("int", "float"):
            return self._scalar_ok(v, self.kind == "int")
        if not isinstance(v, list) or len(v) < self.min_len or (
            self.distinct and len(set(map(repr, v))) < len(v)):
            return False
        if self.kind == "strs":
            return all(isinstance(x, str) and (self.choices is None or x in self.choices)
                       for x in v)
        return all(self._scalar_ok(x, self.kind == "ints") for x in v)


@dataclass(frozen=True)
class Rule:
    """A constraint over several parameters: ``holds(values)`` must be true; ``says`` what is
    allowed."""

    names: tuple[str, ...]
    holds: Callable[[Mapping[str, Any]], bool]
    says: str


def _lrs(hi: float = 10) -> P:
    return P("floats", 0, hi, lo_open=True, hi_open=True)


# Notebook 08's model names (efficiency.build_model): resnet-D / se-resnet-D with D = 6n+2,
# bottleneck-resnet-D
# with D = 9n+2 (He et al.'s ResNet-164), densenet-N / csp-densenet-N with N dense layers per block.
MODEL_SPEC = re.compile(r"^(resnet|se-resnet|bottleneck-resnet|densenet|csp-densenet)-(\d+)$")


def _models_known(names: list[str]) -> bool:
    def ok(name: str) -> bool:
        m = MODEL_SPEC.match(name) if isinstance(name, str) else None
        if not m:
            return False
        n = int(m.group(2))
        if m.group(1) == "bottleneck-resnet":
            return n >= 11 and (n - 2) % 9 == 0
        return n >= 8 and (n - 2) % 6 == 0 if m.group(1).endswith("resnet") else n >= 1
    return all(ok(n) for n in names)


COMMON = {"seed": P("int", 0), "profile": P("str", choices=PROFILES), "device": P("str"),
          "report_dir": P("str")}
TRAINING = {"schedule": P("str", choices=SCHEDULES), "precision": P("str", choices=PRECISIONS)}
IMAGES = {"dataset": P("str", choices=DATASETS), "image_size": P("int", 8, 512)}
POSITIVE = P("int", 1)
FRACTION = P("float", 0, 1, lo_open=True)  # a margin or a share: (0, 1]
EPOCHS = P("float", 0, 10_000, lo_open=True)


def _real_or_min(minimum: int) -> Rule:
    return Rule(("dataset", "n_train"),
                lambda v: v["n_train"] >= (0 if v["dataset"] == "cifar10" else minimum),
                f"n_train: 0 (all of CIFAR-10) or more with dataset cifar10, at least {minimum} "
                "otherwise")


SPECS: dict[str, tuple[dict[str, P], list[Rule]]] = {
    "01_degradation": ({
        **COMMON, **TRAINING, **IMAGES, "data_path": P("str"), "n_train": P("int", 0),
        "n_test": P("int", 0),
        "augment": P("bool"), "depths": P("ints", min_len=2, depth=True, distinct=True),
        "seeds": P("int", 2),
                        "highway_seeds": P("int", 2),
        "epochs": EPOCHS, "construct_epochs": EPOCHS, "batch_size": POSITIVE, "lrs": _lrs(),
        "margin": FRACTION,
        "milestones": P("floats", 0, 1, lo_open=True, hi_open=True), "warmup_steps": P("int", 0),
        "warmup_lr": P("float", 0, 10, lo_open=True), "warmup_min_depth": P("int", 0),
        "weight_decay": P("float", 0, 1),
        "width": POSITIVE, "eval_points": POSITIVE, "gate_bias": P("float", -20, 20),
        "nesterov": P("bool")},
        [_real_or_min(10)]),
    "02_gradient_flow": ({
        **COMMON, **TRAINING, **IMAGES, "data_path": P("str"), "n_train": P("int", 0),
        "n_test": P("int", 0),
        "depths": P("ints", min_len=2, depth=True, distinct=True),
        "shatter_depths": P("ints", min_len=2, depth=True, distinct=True),
        "train_depth": P("int", 8, depth=True),
        "seeds": P("int", 2), "lrs": _lrs(), "lr_choice": P("str", choices=LR_CHOICES),
        "epochs": EPOCHS,
        "sweep_epochs": EPOCHS, "grad_batches": POSITIVE, "batch_size": POSITIVE,
        "shatter_points": P("int", 4),
        "shatter_floor": FRACTION, "path_samples": POSITIVE, "sweep_layers": POSITIVE,
        "sweep_every": P("ints", 0, min_len=2)},
        [_real_or_min(64),
         Rule(("sweep_every", "sweep_layers"), lambda v: v["sweep_every"][0] == 0 and all(
             e > 0 and v["sweep_layers"] % e == 0 for e in v["sweep_every"][1:]),
              "sweep_every: 0 (plain) first, then spacings that divide sweep_layers"),
         Rule(("n_train", "grad_batches", "batch_size"),
              lambda v: not 0 < v["n_train"] < v["grad_batches"] * v["batch_size"],
              "grad_batches * batch_size at most n_train")]),
    "03_equivalence": ({
        **COMMON, "dataset": P("str", choices=("cifar10", "texture")),
        "image_size": P("int", 4, 512),
        "conv_trials": POSITIVE, "max_inputs": P("int", 2), "max_layers": POSITIVE,
        "n_train": P("int", 10),
        "n_test": P("int", 10), "epochs": EPOCHS, "n_blocks": P("int", 2), "growth": POSITIVE,
        "n_probe": P("int", 2), "ridge_alpha": P("float", 0), "seeds": P("int", 2),
        "margin": FRACTION},
        [Rule(("n_probe", "n_train", "n_test"),
              lambda v: v["n_probe"] <= min(v["n_train"], v["n_test"]),
              "n_probe at most min(n_train, n_test)")]),
    "04_cost": ({
        **COMMON, "hardware_dir": P("str"),
        "models": P("strs", choices=("resnet50", "densenet121"), min_len=2, distinct=True),
        "hybrids": P("strs", choices=("efficientnet_b0", "regnet_y_400mf", "resnet18",
                                      "densenet169"), min_len=0),
        "flop_size": P("int", 32, 1024), "time_size": P("int", 32, 1024), "growth": POSITIVE,
        "block_size": P("int", 4, 512), "block_batch": POSITIVE, "repeats": P("int", 5),
        "batch_sizes": P("ints", 1), "block_layers": P("ints", 1, min_len=3, distinct=True),
        "min_run_time": P("float", 0, 600, lo_open=True)},
        []),
    "05_transformer_norm": ({
        **COMMON, "n_train": P("int", 16), "n_test": P("int", 8), "seq_len": P("int", 4, 4096),
        "vocab": P("int", 2), "d_model": P("int", 2), "n_heads": POSITIVE, "d_ff": POSITIVE,
        "grad_seeds": POSITIVE,
        "grad_batches": POSITIVE, "grad_depths": P("ints", 1, min_len=2, distinct=True),
        "depth": POSITIVE,
        "warmup": POSITIVE, "seeds": POSITIVE, "batch_size": POSITIVE, "epochs": EPOCHS,
        "lrs": _lrs(),
        "t3_seeds": POSITIVE, "t3_depths": P("ints", 1), "t3_lr": P("float", 0, 10, lo_open=True),
        "t3_warmup": P("int", 0), "t3_epochs": EPOCHS,
        "window": P("int", 0), "text_path": P("str"), "text_seq_len": P("int", 4, 4096)},
        [Rule(("d_model", "n_heads"), lambda v: v["d_model"] % v["n_heads"] == 0,
              "d_model a multiple of n_heads"),
         Rule(("grad_batches", "batch_size", "n_train"),
              lambda v: v["grad_batches"] * v["batch_size"] <= v["n_train"],
              "grad_batches * batch_size at most n_train")]),
    "06_unet_skips": ({
        **COMMON, "precision": P("str", choices=PRECISIONS), "size": P("int", 16, 512),
        "data_path": P("str"),
        "train_slices": P("int", 1), "tile": P("int", 2), "depth": P("int", 1, 8), "base": POSITIVE,
        "seeds": P("int", 2), "batch_size": POSITIVE, "epochs": EPOCHS, "lrs": _lrs(1),
        "band": P("int", 0),
        "tol": P("int", 0), "margin": FRACTION, "plateau": FRACTION,
        "thickness_bins": P("ints", 1, distinct=True),
        "elastic_copies": P("int", 0, 100)},
        [Rule(("tile", "size", "depth"), lambda v: v["tile"] <= v["size"]
              and v["size"] % v["tile"] == 0
              and v["tile"] % 2 ** v["depth"] == 0,
              "tile: divides size and is a multiple of 2**depth"),
         Rule(("thickness_bins",), lambda v: v["thickness_bins"] == sorted(v["thickness_bins"]),
              "thickness_bins in increasing order"),
         Rule(("train_slices", "data_path"), lambda v: v["data_path"] or v["train_slices"] <= 29,
              "train_slices: 1 .. 29 of ISBI 2012's 30 slices (a data_path folder: fewer than its "
              "images)")]),
    # 07 draws its landscapes on 01's nets: data, recipe, rate grid and depths are 01's (SHARED
    # below), from 07's seed.
    "07_loss_landscape": ({
        **COMMON, "seeds": P("int", 2), "eval_images": P("int", 2),
        "grid": P("int", 5, 101),
        "span": P("float", 0, 100, lo_open=True), "pairs": POSITIVE,
        "slice_points": P("int", 5, 1001),
        "hessian_grid": P("int", 0, 101)}, []),
    "08_param_efficiency": ({
        **COMMON, **TRAINING, **IMAGES, "data_path": P("str"), "n_train": P("int", 20),
        "n_val": P("int", 10),
                             "n_test": P("int", 0),
        "models": P("strs"), "pair": P("strs", min_len=2), "control": P("str"),
        "hybrids": P("dict"),
        "small_sizes": P("ints", 10),
        "seeds": P("int", 2), "lr_seeds": POSITIVE, "steps": POSITIVE, "batch_size": POSITIVE,
        "lrs": _lrs(),
        "weight_decay": P("float", 0, 1), "margin": FRACTION, "augment": P("bool")},
        [Rule(("lr_seeds", "seeds"), lambda v: v["lr_seeds"] <= v["seeds"],
              "lr_seeds at most seeds"),
         Rule(("pair",), lambda v: len(v["pair"]) == 2
              and v["pair"][0].startswith(("resnet", "bottleneck-resnet"))
              and v["pair"][1].startswith("densenet"),
              "pair: ['resnet-D' or 'bottleneck-resnet-D', 'densenet-N']"),
         Rule(("control",), lambda v: v["control"].startswith("resnet-"),
              "a plain ResNet, 'resnet-D'"),
         Rule(("small_sizes", "n_train"), lambda v: all(n < v["n_train"] for n in v["small_sizes"]),
              "small_sizes below n_train"),
         Rule(("models", "pair", "control", "hybrids"), lambda v: _models_known(
             v["models"] + v["pair"] + [v["control"]] + list(v["hybrids"]) + list(
                 v["hybrids"].values())),
              "model names as efficiency.build_model reads them (e.g. resnet-20, densenet-4, "
              "se-resnet-20, csp-densenet-4)")]),
}


# A notebook that asks for another's runs (through ctx.parameters_of) depends on that notebook's
# parameters too:
# skipanalysis.pipeline.deps puts the other's section into its parameter stamp and the other
# notebook among its inputs.
# Only the parameters that decide those runs count (degradation.prepare and DepthRuns.from_params
# read no others;
# tested), so editing 01's margin or construct_epochs re-runs 01 alone.
DEPTH_RUNS = ("dataset", "data_path", "n_train", "n_test", "image_size", "seed", "seeds", "depths",
              "epochs",
              "batch_size", "lrs", "schedule", "milestones", "warmup_steps", "warmup_lr",
              "warmup_min_depth",
              "weight_decay", "nesterov", "eval_points", "precision", "augment", "width",
              "gate_bias")
SHARED = {"07_loss_landscape": {"01_degradation": DEPTH_RUNS},
          "02_gradient_flow": {"01_degradation": DEPTH_RUNS}}


def check_common(values: Mapping[str, Any]) -> None:
    """Check the parameters every notebook has (``COMMON``) that ``values`` holds, for a notebook
    opened without its namespace (one line naming the first bad one, as ``check``)."""
    for name, p in COMMON.items():
        if name in values and not p.ok(values[name]):
            raise ParameterError(
                f"parameter {name}={values[name]!r} is not allowed; expected {p.expected()}")


def check(notebook: str, values: Mapping[str, Any]) -> None:
    """Check ``values`` against ``notebook``'s spec (a notebook without one is not checked).

    Raises:
        ParameterError: one line naming the first bad parameter (in the spec's order), its value and
        what is
            allowed; or a parameter the spec declares but ``values`` lacks.
    """
    if notebook not in SPECS:
        return
    spec, rules = SPECS[notebook]
    for name, p in spec.items():
        if name not in values:
            raise ParameterError(
                f"{notebook}: parameter {name} is not set; expected {p.expected()}")
        if not p.ok(values[name]):
            raise ParameterError(
                f"parameter {name}={values[name]!r} is not allowed; expected {p.expected()}")
    for r in rules:
        if not r.holds(values):
            shown = ", ".join(f"{n}={values[n]!r}" for n in r.names)
            if len(r.names) == 1:
                raise ParameterError(f"parameter {shown} is not allowed; expected {r.says}")
            raise ParameterError(f"parameters {shown} are not allowed together; expected {r.says}")


def declared(notebook: str) -> list[str]:
    """The parameter names ``notebook``'s spec declares."""
    return list(SPECS.get(notebook, ({}, []))[0])
