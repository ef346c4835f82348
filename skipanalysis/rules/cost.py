"""Rules for notebook 04 (cost on real hardware): C3, C5-C8, and the exact-count checks C1, C2, C4
(identities).

Times are per-repeat samples from interleaved rounds (round ``r`` times every arm once, so a shared
machine's load drift hits all arms alike): a ratio of two arms is paired by round,
``ratio_interval``. Saved-for-backward bytes are exact counts (no noise), so the memory halves of C3
and C7 read fixed thresholds on a polynomial fit directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import stats
from .core import RULES, Decision, _decide, check, identity, needed, rule

__all__ = ["ratio_interval", "quadratic_share", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8",
           "GPU_TYPES",
           "MIN_REPEATS"]

MIN_REPEATS = 5  # paired rounds a time ratio needs before a rule reads it
GPU_TYPES = ("cuda", "mps")  # device types C6 ("on GPUs") is decided on


def ratio_interval(a: Sequence[float], b: Sequence[float], unit: str = "round") -> stats.Interval:
    """Ratio of two arms, paired by ``unit`` (a timing round, a seed): the geometric mean of ``a[r]
    / b[r]`` with a 95% interval.

    The interval is the paired t interval of the mean log ratio (``stats.paired_difference`` of the
    logs), exponentiated; ``n`` is the number of pairs.
    """
    la = np.log(np.asarray(a, dtype=float))
    lb = np.log(np.asarray(b, dtype=float))
    d = stats.paired_difference(la, lb)
    return stats.Interval(math.exp(d.estimate), math.exp(d.low), math.exp(d.high), d.n,
                          f"geometric mean of per-{unit} ratios, paired t over {unit}s (log scale)")


def quadratic_share(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Least-squares quadratic fit of ``y`` on ``x``: the quadratic term's share of the fitted value
    at the largest ``x`` (0 for a straight line, 1 for a pure square), with the coefficients and the
    linear fit's R^2."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    coef = np.polyfit(x, y, 2)
    top = float(np.polyval(coef, x.max()))
    lin = np.polyval(np.polyfit(x, y, 1), x)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(((y - lin) ** 2).sum()) / ss_tot if ss_tot else 1.0
    return {"share": float(coef[0] * x.max() ** 2 / top) if top else math.nan,
            "coef": [float(c) for c in coef], "linear_r2": r2}


def _too_few(claim: str, nums: dict, **pairs: tuple[Sequence[float] | None, Sequence[float] | None]
             ) -> Decision | None:
    """Inconclusive when a pair of time samples has fewer than ``MIN_REPEATS`` rounds or unequal
    rounds."""
    lengths = {k: [len(v) if v is not None else 0 for v in pair] for k, pair in pairs.items()}
    if any(min(n) < needed(MIN_REPEATS) or n[0] != n[1] for n in lengths.values()):
        return Decision(claim, "inconclusive", RULES[claim].text,
                        {**nums, "too few paired rounds": lengths, "needed": needed(MIN_REPEATS)})
    return None


C1_RANGE = (0.25, 0.42)  # "roughly a third" of the parameters


@check("C1")
def c1(resnet_params: int, dense_params: int) -> Decision:
    """C1, an exact count: verified when DenseNet-121 / ResNet-50 parameters lies in
    ``C1_RANGE``."""
    ratio = dense_params / resnet_params
    return identity("C1", C1_RANGE[0] <= ratio <= C1_RANGE[1],
                    f"exact count: DenseNet-121/ResNet-50 parameter ratio in [{C1_RANGE[0]}, "
                    f"{C1_RANGE[1]}] (roughly a third); failed otherwise",
                    {"ratio": ratio, "resnet50": int(resnet_params),
                                                            "densenet121": int(dense_params)})


@check("C2")
def c2(dense_flops: Sequence[float], resnet_flops: Sequence[float],
       counters: Sequence[str]) -> Decision:
    """C2, an exact count: verified when DenseNet-121 needs fewer forward FLOPs than ResNet-50 under
    every counter (one value per counter, same order)."""
    fewer = {c: bool(d < r) for c, d, r in zip(counters, dense_flops, resnet_flops)}
    return identity("C2", bool(fewer) and all(fewer.values()),
                    "exact count: DenseNet-121 forward FLOPs below ResNet-50's under every counter "
                    f"({', '.join(counters)}); failed otherwise", {"fewer": fewer})


@check("C4")
def c4(in_channels: Sequence[int], share_1x1: Sequence[float], growth: int) -> Decision:
    """C4, an exact count over a dense block's layers: verified when each layer's input is exactly
    ``growth`` maps wider than the previous one and the 1x1 bottleneck's share of the layer's
    convolution work rises strictly."""
    widths, shares = np.asarray(in_channels), np.asarray(share_1x1, dtype=float)
    steps_ok, rising = bool((np.diff(widths) == growth).all()), bool((np.diff(shares) > 0).all())
    return identity("C4", steps_ok and rising and len(widths) >= 2,
                    "exact count: the input widens by exactly k maps per layer and the 1x1 share "
                    "of the layer's convolution work rises strictly with the layer index; failed "
                    "otherwise",
                    {"steps_ok": steps_ok, "rising": rising, "layers": len(widths)})


@rule("C3", """Saved-for-backward bytes (exact counts) at three or more depths, fitted by least
squares with a quadratic in the number of layers; the quadratic term's share of the fitted bytes at
the largest depth measures how quadratic the growth is. Supported if that share is at least 0.2 for
the dense block and at most 0.01 in absolute value for the residual stage (linear). Refuted if the
dense block's share is below 0.05 (no quadratic growth) or the residual stage's exceeds 0.2.
Inconclusive otherwise or with fewer than three depths.""")
def c3(layers: Sequence[int], dense_bytes: Sequence[float],
       residual_bytes: Sequence[float]) -> Decision:
    if len(set(layers)) < 3:
        return Decision("C3", "inconclusive", RULES["C3"].text,
                        {"layers": list(layers), "depths": "fewer than 3"})
    dense, res = quadratic_share(layers, dense_bytes), quadratic_share(layers, residual_bytes)
    nums = {"layers": list(layers), "dense": dense, "residual": res}
    return _decide("C3", dense["share"] >= 0.2 and abs(res["share"]) <= 0.01,
                   dense["share"] < 0.05 or res["share"] > 0.2, nums)


@rule("C5", """Two halves. Operation count (exact): the addition's element operations over the
block's multiply-adds must be below 1% (checked here as verified or failed). Time: per interleaved
round, the time of the addition alone over the time of the whole basic block's forward pass; the
geometric mean of the ratios over at least 5 rounds with its 95% paired interval. Supported if the
count check is verified and the interval's upper end is below 0.05; refuted if its lower end is
above 0.20; inconclusive otherwise.""", per_seed=("add_times", "block_times"),
unit="round")
def c5(add_times: Sequence[float], block_times: Sequence[float], add_ops: int,
       block_macs: float) -> Decision:
    op_share = add_ops / block_macs
    nums = {"op_share": op_share, "op_count_check": "verified" if op_share < 0.01 else "failed",
            "add_ops": int(add_ops), "block_macs": float(block_macs)}
    if (d := _too_few("C5", nums, add_vs_block=(add_times, block_times))) is not None:
        return d
    share = ratio_interval(add_times, block_times)
    nums["time_share"] = share.as_dict(5)
    return _decide("C5", op_share < 0.01 and share.high < 0.05, share.low > 0.20, nums)


@rule("C6", """Decided on GPUs only (cuda, mps); on any other device the numbers are reported and
the verdict is 'not measured here'. At the largest batch, forward+backward time per image,
DenseNet-121 over ResNet-50 per interleaved round; the geometric mean ratio over at least 5 rounds
with its 95% paired interval. Supported if the interval lies above 1 (DenseNet slower) and
DenseNet-121 needs fewer FLOPs (the claim's 'despite'); refuted if the interval lies below 1;
inconclusive otherwise, or with fewer than 5 paired rounds.""", per_seed=("dense_times",
"resnet_times"), unit="round")
def c6(dense_times: Sequence[float] | None, resnet_times: Sequence[float] | None, device_type: str,
       fewer_flops: bool, intensity_ratio: float | None = None) -> Decision:
    nums = {"device_type": device_type, "fewer_flops": bool(fewer_flops),
            "intensity_ratio": intensity_ratio}
    if device_type not in GPU_TYPES:
        paired = (dense_times is not None and resnet_times is not None
                  and len(dense_times) == len(resnet_times) >= 2)
        iv = ratio_interval(dense_times, resnet_times) if paired else None
        return Decision("C6", "not measured here", RULES["C6"].text,
                        {**nums, "not a GPU": device_type,
                         "dense_over_resnet_time": iv.as_dict() if iv is not None else None})
    if (d := _too_few("C6", nums, dense_vs_resnet=(dense_times, resnet_times))) is not None:
        return d
    ratio = ratio_interval(dense_times, resnet_times)
    nums["dense_over_resnet_time"] = ratio.as_dict()
    return _decide("C6", ratio.low > 1 and fewer_flops, ratio.high < 1, nums)


@rule("C7", """The checkpointed dense block (recomputed concatenation, norm and 1x1 convolution)
against the plain one. Memory: the quadratic term's share of its fitted saved-for-backward bytes at
the largest depth (exact counts, as in C3). Time: forward+backward at the largest depth,
checkpointed over plain per interleaved round, geometric mean over at least 5 rounds with its 95%
paired interval. Supported if the share is below 0.05 (linear growth) and the time interval's upper
end is at most 1.5 (a modest cost); refuted if the share exceeds 0.2 or the interval's lower end
exceeds 2; inconclusive otherwise.""", per_seed=("ckpt_times", "plain_times"), unit="round")
def c7(layers: Sequence[int], checkpointed_bytes: Sequence[float], ckpt_times: Sequence[float],
       plain_times: Sequence[float], plain_bytes_at_max: float | None = None) -> Decision:
    fit = quadratic_share(layers, checkpointed_bytes)
    nums = {"layers": list(layers), "checkpointed": fit}
    if plain_bytes_at_max:
        top = float(np.asarray(checkpointed_bytes, float)[int(np.argmax(layers))])
        nums["memory_saving_at_max"] = 1 - top / plain_bytes_at_max
    if len(set(layers)) < 3:
        return Decision("C7", "inconclusive", RULES["C7"].text, {**nums, "depths": "fewer than 3"})
    if (d := _too_few("C7", nums, checkpointed_vs_plain=(ckpt_times, plain_times))) is not None:
        return d
    ratio = ratio_interval(ckpt_times, plain_times)
    nums["time_ratio"] = ratio.as_dict()
    return _decide("C7", fit["share"] < 0.05 and ratio.high <= 1.5, fit["share"] > 0.2
                   or ratio.low > 2, nums)


@rule("C8", """Per device, both sides measured, DenseNet-121 over ResNet-50 per interleaved round
(geometric mean over at least 5 rounds, 95% paired interval). Storage/bandwidth side: the time to
load the saved weights from disk (the file's pages dropped from the OS cache first) and place them
on the device. Throughput side: forward+backward time per image at the largest batch. Supported if
DenseNet-121 loads faster (load-time interval below 1) and ResNet-50 trains faster (time interval
above 1). Refuted if DenseNet-121 loads slower (interval above 1) or also trains faster (interval
below 1). Inconclusive otherwise, or with fewer than 5 paired rounds.""",
      per_seed=("dense_load", "resnet_load", "dense_train", "resnet_train"), unit="round")
def c8(dense_load: Sequence[float] | None, resnet_load: Sequence[float] | None,
       dense_train: Sequence[float] | None, resnet_train: Sequence[float] | None,
       dense_bytes: int | None = None, resnet_bytes: int | None = None) -> Decision:
    nums = {"weight_bytes": {"densenet121": dense_bytes, "resnet50": resnet_bytes}}
    if (d := _too_few("C8", nums, load=(dense_load, resnet_load),
                      train=(dense_train, resnet_train))) is not None:
        return d
    load, train = ratio_interval(dense_load, resnet_load), ratio_interval(dense_train, resnet_train)
    nums.update(load_time_ratio=load.as_dict(), train_time_ratio=train.as_dict())
    return _decide("C8", load.high < 1 and train.low > 1, load.low > 1 or train.high < 1, nums)
