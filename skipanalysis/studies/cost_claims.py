"""Notebook 04's claims, a ``Finding`` each, read from what ``cost`` measured: C1-C5 and C7 from one
machine's counts and block measurements, C6 and C8 per device from the machines' hardware files.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..claims import Finding
from ..hardware import device_label
from ..rules import core as rulecore
from ..rules import cost as rules

# --- the claims of one machine's counts and block measurements: a Finding each --------------------

FVCORE, FLOP_COUNTER = "fvcore GMAC (1/multiply-add)", "flop_counter GFLOP (2/multiply-add)"


def count_claims(counts: pd.DataFrame, flop_size: int) -> list[Finding]:
    """C1 and C2 from ``count_table`` (rows resnet50 and densenet121)."""
    r, d = counts.loc["resnet50"], counts.loc["densenet121"]
    c1 = rules.c1(r.parameters, d.parameters)
    c2 = rules.c2([d[FVCORE], d[FLOP_COUNTER]], [r[FVCORE], r[FLOP_COUNTER]],
                  [FVCORE, FLOP_COUNTER])
    return [Finding(
        c1, f"DenseNet-121 has {d.parameters / 1e6:.2f}M parameters, {c1.numbers['ratio']:.2f} of "
                        f"ResNet-50's {r.parameters / 1e6:.2f}M",
                    evidence={"flop_size": flop_size}),
            Finding(c2, f"at {flop_size} px DenseNet-121 needs {d[FVCORE]:.2f} GMAC vs ResNet-50's "
                        f"{r[FVCORE]:.2f} (fvcore; flop_counter: {d[FLOP_COUNTER]:.2f} vs "
                        f"{r[FLOP_COUNTER]:.2f} GFLOP)",
                    evidence={"image_size": flop_size,
                              "resnet50": r[[FVCORE, FLOP_COUNTER]].to_dict(),
                              "densenet121": d[[FVCORE, FLOP_COUNTER]].to_dict()})]


def layer_work_claim(per_layer: pd.DataFrame, growth: int) -> Finding:
    """C4 from ``dense_layer_flops``."""
    first, last = per_layer.share_1x1.iloc[0], per_layer.share_1x1.iloc[-1]
    return Finding(rules.c4(per_layer.in_channels, per_layer.share_1x1, growth),
                   f"the 1x1 bottleneck's share of a layer's work rises from {first:.0%} (layer 1) "
                   f"to {last:.0%} (layer {len(per_layer)})",
                   evidence={"first_share": first, "last_share": last, "layers": len(per_layer),
                             "growth": growth})


def memory_claims(mem: pd.DataFrame, block_layers: list[int], note: dict, peaks: dict | None = None
                  ) -> list[Finding]:
    """C3 and C7 from ``memory_sweep``: the growth of saved bytes, and recomputation's saving and
    time; on CUDA, C7 also carries DenseNet-BC-100's allocator peaks beside Pleiss et al.'s
    (``densenet_peaks``)."""
    by = {b: g.set_index("layers").sort_index() for b, g in mem.groupby("block")}
    top = max(block_layers)
    c3 = rules.c3(block_layers, list(by["dense"].saved_bytes), list(by["residual"].saved_bytes))
    ck, pl = by["dense (checkpointed)"], by["dense"]
    c7 = rules.c7(block_layers, list(ck.saved_bytes), ck.loc[top, "times"], pl.loc[top, "times"],
                  pl.loc[top, "saved_bytes"])
    t = {k: c7.numbers.get("time_ratio", {}).get(k, float("nan"))
         for k in ("estimate", "low", "high")}
    return [Finding(c3, "saved activations: the quadratic term carries "
                        f"{c3.numbers['dense']['share']:.0%} of a {top}-layer dense block's bytes "
                        f"and {abs(c3.numbers['residual']['share']):.1%} of a residual "
                        "stage's", evidence=dict(note)),
            Finding(c7, f"recomputation saves {c7.numbers['memory_saving_at_max']:.0%} of the "
                        f"saved bytes at {top} layers, quadratic share "
                        f"{c7.numbers['checkpointed']['share']:.1%}, at {t['estimate']:.2f}x the "
                        f"time [{t['low']:.2f}, {t['high']:.2f}]{_peaks_clause(peaks)}",
                    evidence={**note, "allocator_peaks": peaks
                              or "CUDA only: not measured on this device"})]


def _peaks_clause(peaks: dict | None) -> str:
    if not peaks:
        return ""
    pub = peaks["published_gb"]
    return (f"; {peaks['model']} at batch {peaks['batch']}: allocator peak {peaks['naive_gb']:.2f} "
            f"GB naive vs {peaks['efficient_gb']:.2f} GB efficient (Pleiss et al.: {pub['naive']} "
            f"vs {pub['efficient']} GB)")


def addition_claim(add: dict, batch: int, size: int, repeats: int) -> Finding:
    """C5 from ``addition_share``: the addition's share of a basic block's forward time and of its
    operations."""
    d = rules.c5(add["add_times"], add["block_times"], add["add_ops"], add["block_macs"])
    share = d.numbers.get("time_share", {}).get("estimate", float("nan"))
    return Finding(
        d, f"the addition takes {share:.1%} of a basic block's forward time (geometric mean over "
                      f"{repeats} rounds) and {add['op_share']:.2%} of its operations",
                   evidence={"input": f"random {batch}x64x{size}x{size}", "rounds": repeats,
                             "block_ms": 1e3 * add["block_s"], "add_ms": 1e3 * add["add_s"]})


# --- machines side by side: the per-device claims -------------------------------------------------

def _samples(rows: pd.DataFrame, model: str) -> list[float] | None:
    """Per-round samples of ``model`` in a timing table (None in hardware files written before they
    were kept)."""
    if "times" not in rows or model not in rows.index or not isinstance(rows.loc[model, "times"],
                                                                        list):
        return None
    return [float(t) for t in rows.loc[model, "times"]]


def device_claims(hw: dict[str, Any],
                  models: tuple[str, str] = ("resnet50", "densenet121")) -> list[Finding]:
    """C6 and C8 for one machine's hardware file, a ``Finding`` each with the machine's device
    label.

    C6 reads forward+backward time at the largest batch (``rules.c6``: decided on GPUs only); C8
    reads the weight load times and the same training times (``rules.c8``).
    """

    resnet, dense = models
    num, label = hw["numbers"], device_label(hw["fingerprint"])
    tt = pd.DataFrame(num["timing"])
    big = tt[(tt["pass"] == "fwd+bwd") & (tt.variant == "fp32") & (
        tt.batch == tt.batch.max())].set_index("model")
    cnt = pd.DataFrame(num["counts"]).set_index("model")
    gmac = cnt["fvcore GMAC (1/multiply-add)"]
    intensity = gmac / cnt["bytes moved (MB, estimate)"]
    batch = int(big.loc[resnet, "batch"])
    ms = {m: 1e3 * float(big.loc[m, "per_image_s"]) for m in models}
    base = {"machine": hw.get("machine"), "device_type": num["device_type"], "batch": batch,
            "image_size": num.get("time_size"), "fwd_bwd_ms_per_image": ms,
            "profile": num.get("profile"),
            "date": hw.get("date")}
    d6 = rules.c6(_samples(big, dense), _samples(big, resnet), num["device_type"],
                  bool(gmac[dense] < gmac[resnet]), float(intensity[dense] / intensity[resnet]))
    verb = "slower" if ms[dense] > ms[resnet] else "faster"
    h6 = (
        f"{label}: DenseNet-121 {ms[dense]:.1f} ms vs ResNet-50 {ms[resnet]:.1f} ms per image for "
        f"fwd+bwd (batch {batch}), {verb}")
    if d6.verdict == "not measured here":
        h6 += "; not a GPU, so reported without a verdict on this GPU claim"
    load = pd.DataFrame(num.get("weight_load") or []).set_index("model") if num.get(
        "weight_load") else \
        pd.DataFrame(columns=["bytes", "median_s", "times"])
    wbytes = {m: int(load.loc[m, "bytes"]) if m in load.index else 4 * int(cnt.loc[m, "parameters"])
              for m in models}
    d8 = rules.c8(_samples(load, dense), _samples(load, resnet), _samples(big, dense),
                  _samples(big, resnet),
                  wbytes[dense], wbytes[resnet])
    load_ms = {m: 1e3 * float(load.loc[m, "median_s"]) if m in load.index else None for m in models}
    read_ms = {m: 1e3 * float(load.loc[m, "read_median_s"]) if "read_median_s" in load
               and m in load.index else None
               for m in models}
    if None in load_ms.values():
        h8 = f"{label}: weight loading not measured in this hardware file"
    else:
        h8 = (
            f"{label}: DenseNet-121's weights ({wbytes[dense] / 2**20:.0f} MiB) load in "
            f"{load_ms[dense]:.1f} ms vs ResNet-50's ({wbytes[resnet] / 2**20:.0f} MiB) in "
            f"{load_ms[resnet]:.1f} ms")
        if None not in read_ms.values():
            h8 += f" (reading the bytes alone: {read_ms[dense]:.1f} vs {read_ms[resnet]:.1f} ms)"
    h8 += f"; training throughput {1e3 / ms[dense]:.1f} vs {1e3 / ms[resnet]:.1f} images/s"
    return [Finding(d6, h6, evidence=base, device=label),
            Finding(d8, h8, evidence={**base, "weight_bytes": wbytes, "load_ms": load_ms,
                                      "cold_read_ms": read_ms},
                    device=label)]


def machine_claims(machines: dict[str, dict], models: tuple[str, str] = ("resnet50", "densenet121")
                   ) -> list[Finding]:
    """C6 and C8 for every machine with a hardware file (``device_claims``), and 'not measured here'
    for the device types without one (C6: GPU types only; C8: every type)."""
    found = [f for hw in machines.values() for f in device_claims(hw, models)]
    measured = {hw["numbers"]["device_type"] for hw in machines.values()}
    absent = {"C6": set(rules.GPU_TYPES) - measured, "C8": {"cpu", "cuda", "mps", "xla"} - measured}
    for cid, kinds in absent.items():
        for kind in sorted(kinds):
            d = rulecore.Decision(cid, "not measured here", rulecore.text(cid),
                                  {"device_type": kind,
                                   "reason": "no hardware file for this device type"})
            found.append(Finding(
                d, f"no {kind} machine has been measured; add one with make record-hardware",
                                 evidence={"device_type": kind},
                                 device=f"{kind} (no machine measured)"))
    return found


def machine_table(found: list[Finding]) -> pd.DataFrame:
    """One row per C6/C8 finding: claim, device, verdict."""
    return pd.DataFrame(
        [{"claim": f.claim, "device": f.device, "verdict": f.decision.verdict} for f in found])
