"""The study's design, stated before any run: one row per empirical claim.

Each row names the quantity a claim's rule reads, the effect of interest (the smallest effect the
study is built to detect, from the paper's number where there is one), the test, the margin per
profile and the seeds (or timing rounds) per profile. One alpha for the whole study
(``stats.ALPHA``, 0.05 two-sided: every decision reads a 95% interval; a one-sided bound is at
0.025). A rule's verdict reached with fewer seeds than its row plans reads inconclusive,
"underpowered" (``claims.ClaimBook.record``); leaving one seed out is reported beside it, never a
veto.

``power`` gives the power of a row's primary test at its stated effect from the spread the measured
runs show (the primary interval of a claim's evidence): the noncentral t for paired differences and
non-inferiority, simulation of the exact intervals for rates of trained runs.
``skipanalysis.pipeline.plan`` (``make plan``) uses it to say what would decide an open claim.
Identities and exact counts (E1-E4, C1, C2, C4) have no design: they are checks.

The seeds and margins here are the ones the profiles run (``notebooks/params/<profile>.yaml``; a
test keeps them equal): a profile that runs fewer seeds than its design would be underpowered by
construction.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from . import stats
from .rules.transformer_norm import more_often

ALPHA = stats.ALPHA
TARGET_POWER = 0.8
PROFILES = ("quick", "full")
# Primary-test kinds with a power formula or simulation here; others say why they have none.
KINDS = ("difference", "noninferiority", "rates", "timing", "none")


@dataclass(frozen=True)
class Design:
    """One claim's design.

    ``primary`` is the key in the rule's numbers of the interval the power analysis reads (a paired
    interval, or a margin test whose ``difference`` is one); ``kind`` says how its power is
    computed; ``effect`` is the effect of interest in the quantity's units (for ``noninferiority``:
    the true difference assumed, 0 for equally good arms); ``margin`` and ``seeds`` map a profile to
    its value and to the parameter that sets it (``(notebook, parameter)``), so a test can hold the
    profiles to the design.
    """

    claim: str
    quantity: str
    effect: float
    effect_text: str
    source: str
    test: str
    kind: str
    primary: str = ""
    margin: Mapping[str, float] | None = None
    margin_param: tuple[str, str] | None = None
    seeds: Mapping[str, int] | None = None
    seeds_param: tuple[str, str] | None = None
    unit: str = "seed"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"design {self.claim}: kind={self.kind!r} is not allowed; choose one of {KINDS}")

    def planned(self, profile: str) -> int | None:
        """Seeds (or rounds) planned for ``profile``; smoke runs are checked against quick's
        plan."""
        if not self.seeds:
            return None
        return self.seeds.get("quick" if profile == "smoke" else profile)

    def margin_for(self, profile: str) -> float | None:
        """The margin for ``profile`` (smoke runs use quick's)."""
        return (self.margin or {}).get("quick" if profile == "smoke" else profile)

    def row(self, profile: str) -> dict[str, Any]:
        """The row for ``profile`` as plain values (the claim's evidence and the paper's
        appendix)."""
        d = asdict(self)
        d["margin"] = self.margin_for(profile)
        d["seeds"] = self.planned(profile)
        d["alpha"] = ALPHA
        d.pop("margin_param")
        d.pop("seeds_param")
        return d


_D = Design
_01, _02, _03, _04 = "01_degradation", "02_gradient_flow", "03_equivalence", "04_cost"
_05, _06, _07, _08 = ("05_transformer_norm", "06_unet_skips", "07_loss_landscape",
                      "08_param_efficiency")
FIVE = {"quick": 5, "full": 5}

DESIGNS: dict[str, Design] = {d.claim: d for d in [
    _D("D1", "final training error, deep plain minus shallow plain, paired by seed", 0.02,
       "2 points of training error",
       "He et al. 2016, Fig. 6: the 56-layer plain net's training error stays above "
       "the 20-layer one's throughout training",
       "95% paired t interval above 0, at the budget and at twice it (the "
       "gap must not close below the margin)", "difference", "deep_minus_shallow",
       margin={"quick": 0.02, "full": 0.005}, margin_param=(_01, "margin"), seeds=FIVE,
       seeds_param=(_01, "seeds")),
    _D("D2",
       "final training error, deep residual minus shallow residual (and deep plain minus deep "
       "residual)", 0.0,
       "equally good (true difference 0) against the margin",
       "He et al. 2016, Table 6: CIFAR-10 test error falls "
       "from 8.75% (ResNet-20) to 6.97% (ResNet-56), so deeper residual nets are no worse",
       "non-inferiority, one-sided 97.5% bound below the margin", "noninferiority",
       "noninferiority_deep_vs_shallow",
       margin={"quick": 0.02, "full": 0.005}, margin_param=(_01, "margin"), seeds=FIVE,
       seeds_param=(_01, "seeds")),
    _D("D3",
       "final training error, scratch deep plain minus constructed deep plain, paired by seed",
       0.02,
       "2 points of training error",
       "seed 002 (the identity construction argument); He et al. 2016, section 1",
       "95% paired t interval above 0", "difference", "scratch_minus_constructed", seeds=FIVE,
       seeds_param=(_01, "seeds")),
    _D("D4",
       "median over blocks of the cosine similarity between a block's input and output, trained "
       "against the same net at initialisation", 0.0, "none: one median per net state", "seed 002",
       "thresholds on the trained and initial medians", "none"),
    _D("D5", "final training error at the deep depth: plain minus highway, residual minus highway",
       0.02,
       "highway better than plain by 2 points",
       "Srivastava et al. 2015; He et al. 2016, Table 6 (Highway 7.54% "
       "against ResNet-110 6.43% test error)",
       "95% paired t interval above 0, and non-inferiority of residual",
       "difference", "plain_minus_highway", margin={"quick": 0.02, "full": 0.005},
       margin_param=(_01, "margin"),
       seeds=FIVE, seeds_param=(_01, "highway_seeds")),
    _D("G1", "log10 early/late gradient ratio of the deep plain net with batch norm, per point",
       1.0,
       "a ratio of 1 (log10 0) against the band's edges at 0.1 and 10",
       "He et al. 2016, section 4.1 (with batch "
       "norm, forward and backward signals keep healthy norms)",
       "every point's 95% interval inside the band, Holm "
       "over the points for 'any point outside'", "none", seeds=FIVE, seeds_param=(_02, "seeds")),
    _D("G2",
       "log10 first-block gradient, deep over shallow, without normalisation (plain and residual)",
       1.0,
       "a tenfold shrink of the plain net's early gradient", "seed 002 FAQ; Glorot and Bengio 2010",
       "95% t intervals against the shrink and keep bands (two-sided for the residual net)", "none",
       seeds=FIVE,
       seeds_param=(_02, "seeds")),
    _D("G3", "decay rate of neighbour-gradient correlation with depth, plain minus 2x residual",
       0.0,
       "plain decays more than twice as fast",
       "Balduzzi et al. 2017 (plain ~2^-L, batch-normed residual "
       "~1/sqrt(L))", "t interval over per-seed slopes above 0", "none", seeds=FIVE,
       seeds_param=(_02, "seeds")),
    _D("G4",
       "log10 early/late gradient ratio after training, dense minus residual and dense minus plain",
       0.1,
       "dense early layers get 26% more relative gradient (0.1 in log10)",
       "Huang et al. 2017, section 3 "
       "(implicit deep supervision)", "95% paired t intervals above 0", "difference",
       "dense_minus_residual_log10",
       seeds=FIVE, seeds_param=(_02, "seeds")),
    _D("G5", "lesion damage (share of the way to chance) and the gradient's effective path length",
       0.3,
       "plain damage 0.3 above residual damage",
       "Veit et al. 2016: deleting one block of a ResNet-110 barely "
       "changes its error, most gradient comes from paths of 5-17 of 54 blocks",
       "95% t intervals against the thresholds", "difference", "plain_minus_residual_damage",
       seeds=FIVE,
       seeds_param=(_02, "seeds")),
    _D("G6",
       "steps to fit the training data along the connectivity sweep (every net trained until it "
       "fits), paired by "
       "seed", 15.0, "15 steps (5% of a quick run) saved by the first denser step",
       "seed 001",
       "95% paired t intervals: a shown "
       "gain and a shown saturation", "difference", "first_gain", seeds=FIVE,
       seeds_param=(_02, "seeds")),
    _D("E5",
       "unexplained variance 1 - mean R^2 of decoding earlier outputs, ResNet minus DenseNet, "
       "trained and at "
       "initialisation", 0.05, "5% of the variance left unexplained beyond the margin",
       "seed 001 (the comment "
       "thread on recoverability)", "one-sided 97.5% bounds against the margin in both states",
       "difference",
       "unexplained_residual_minus_dense_trained", margin={"quick": 0.01, "full": 0.01},
       margin_param=(_03, "margin"), seeds=FIVE, seeds_param=(_03, "seeds")),
    _D("C3", "saved-for-backward bytes against block depth (exact counts)", 0.0,
       "none: exact counts",
       "seeds 000 and 001", "fit comparison of quadratic and linear growth", "none"),
    _D("C5", "the residual addition's share of a block's time, per interleaved round", 0.0,
       "none: timing rounds, not seeds", "seed 000",
       "95% interval over rounds below the stated share", "timing",
       unit="round", seeds={"quick": 7, "full": 10}, seeds_param=(_04, "repeats")),
    _D("C6", "DenseNet-121 over ResNet-50 step time on a GPU, per round", 0.0,
       "none: timing rounds",
       "seed 000", "95% interval of the geometric mean ratio above 1", "timing", unit="round",
       seeds={"quick": 7, "full": 10}, seeds_param=(_04, "repeats")),
    _D("C7", "memory and time of the checkpointed dense block against the plain one", 0.0,
       "none: timing rounds",
       "Pleiss et al. 2017 (2.863 against 1.605 GB for DenseNet-BC-100 at batch 64)",
       "fit and 95% time-ratio "
       "interval", "timing", unit="round", seeds={"quick": 7, "full": 10},
       seeds_param=(_04, "repeats")),
    _D("C8", "DenseNet-121 over ResNet-50: weight-load time and training throughput, per round",
       0.0,
       "none: timing rounds", "seed 000", "95% intervals of both ratios against 1", "timing",
       unit="round",
       seeds={"quick": 7, "full": 10}, seeds_param=(_04, "repeats")),
    _D("T1", "slope of log gradient norm on log depth at initialisation, post-norm and pre-norm",
       0.5,
       "slopes 0 (post) and -0.5 (pre)", "Xiong et al. 2020, Theorem 1 and Fig. 3",
       "t intervals over per-seed "
       "slopes", "none", seeds={"quick": 8, "full": 10}, seeds_param=(_05, "grad_seeds")),
    _D("T2",
       "share of runs that train, post-norm with and without warm-up and pre-norm without, "
       "per rate", 1.0,
       "pre-norm trains in every run, post-norm without warm-up in none",
       "Xiong et al. 2020, section 3 "
       "(post-norm without warm-up stalls; pre-norm does not need it)",
       "Clopper-Pearson and Newcombe intervals, "
       "Holm over the rates", "rates", seeds={"quick": 6, "full": 6}, seeds_param=(_05, "seeds")),
    _D("T3", "share of runs that train, post-norm and pre-norm, per depth", 1.0,
       "pre-norm trains in every run, "
       "post-norm in none", "Liu et al. 2020, Fig. 1 (deep post-norm stacks diverge without Admin)",
       "Clopper-Pearson and Newcombe intervals, Holm over the depths", "rates",
       seeds={"quick": 6, "full": 6},
       seeds_param=(_05, "t3_seeds")),
    _D("T4", "attention reach on reversal against a local control task", 1.0, "one token of reach",
       "seed 000", "95% paired t interval of the reach change above 0", "none", seeds=FIVE,
       seeds_param=(_05, "seeds")),
    _D("U1",
       "held-out IoU with long skips minus without, and the boundary share of the added errors "
       "against the with-skip net's own", 0.02, "2 points of IoU",
       "Ronneberger et al. 2015, section 1 (skips bring "
       "back localisation)", "95% paired t intervals above 0", "difference",
       "iou_with_minus_without", seeds=FIVE,
       seeds_param=(_06, "seeds")),
    _D("U2", "IoU lost without skips, thinnest minus thickest structure class", 0.02,
       "2 points of IoU",
       "seed 002 FAQ", "95% paired t interval above 0", "difference", "thinnest_minus_thickest",
       seeds=FIVE,
       seeds_param=(_06, "seeds")),
    _D("U3", "held-out IoU, concatenated minus added skips", 0.02, "a winner by 2 points of IoU",
       "seed 002 (both merges in use)", "TOST at 0.025 a side against the margin", "difference",
       "concat_minus_add",
       margin={"quick": 0.01, "full": 0.005}, margin_param=(_06, "margin"), seeds=FIVE,
       seeds_param=(_06, "seeds")),
    _D("L1",
       "non-convex share of the 2-D loss surface, plain minus residual, and its growth with depth",
       0.1,
       "10 points of non-convex share",
       "Li et al. 2018, Fig. 5 (ResNet-56 smooth and convex-looking, "
       "plain-56 chaotic)", "95% paired t intervals above 0", "none", seeds=FIVE,
       seeds_param=(_07, "seeds")),
    _D("A1",
       "test error, DenseNet minus the larger ResNet (non-inferiority) and the matched control "
       "minus DenseNet", 0.0, "equally good (true difference 0) against the margin",
       "Huang et al. 2017, Table 2: "
       "DenseNet-BC (k=12, 0.8M) 4.51% against ResNet-110 (1.7M) 6.41% on C10+",
       "non-inferiority, one-sided 97.5% bound below the margin", "noninferiority",
       "noninferiority_densenet_vs_resnet", margin={"quick": 0.02, "full": 0.005},
       margin_param=(_08, "margin"),
       seeds=FIVE, seeds_param=(_08, "seeds")),
    _D("A2",
       "overfitting gap (test minus training error) at the scarcest size, ResNet minus DenseNet",
       0.02,
       "2 points of gap", "seed 000",
       "95% paired t intervals above 0 (against the ResNet and the matched "
       "control; the control's is the binding one)", "difference", "control_minus_densenet_gap",
       seeds=FIVE, seeds_param=(_08, "seeds")),
    _D("A3", "each hybrid against its base: test error with parameters, FLOPs and step time", 0.0,
       "equally good (true difference 0) at a lower cost", "seed 000 (CSP and SE hybrids)",
       "Pareto: non-inferiority at the margin and cost ratios", "none",
       margin={"quick": 0.02, "full": 0.005},
       margin_param=(_08, "margin"), seeds=FIVE, seeds_param=(_08, "seeds")),
    _D("S1", "the decided context-dependent verdicts (device, data size, task)", 0.0,
       "none: a rule over verdicts",
       "seed 000", "opposing winners in at least two independent claims", "none"),
]}


def design(claim_id: str) -> Design | None:
    """The design row of an empirical claim (None for identities and exact counts)."""
    return DESIGNS.get(claim_id)


def find(numbers: Any, key: str) -> Any:
    """The first value under ``key`` anywhere in nested ``numbers``."""
    if isinstance(numbers, Mapping):
        if key in numbers:
            return numbers[key]
        for v in numbers.values():
            found = find(v, key)
            if found is not None:
                return found
    return None


def observed_sd(numbers: Mapping[str, Any], key: str) -> tuple[float, int] | None:
    """The standard deviation of the per-seed differences behind the interval at ``key`` in a rule's
    numbers, and its n: the t interval's half-width over its t quantile, times sqrt(n). None where
    there is no such interval."""
    iv = find(numbers, key)
    if isinstance(iv, Mapping) and "difference" in iv:
        iv = iv["difference"]
    if not isinstance(iv, Mapping) or not {"low", "high", "n"} <= set(iv):
        return None
    try:
        low, high, n, level = float(iv["low"]), float(iv["high"]), int(iv["n"]), float(
            iv.get("level", 0.95))
    except (TypeError, ValueError):
        return None
    if n < 2 or not (math.isfinite(low) and math.isfinite(high)):
        return None
    from scipy import stats as sp

    half = (high - low) / 2
    return half / float(sp.t.ppf(0.5 + level / 2, n - 1)) * math.sqrt(n), n


def power(d: Design, sd: float | None, n: int, profile: str = "quick") -> float | None:
    """Power of ``d``'s primary test with ``n`` seeds at its stated effect, given the spread ``sd``
    of the per-seed differences (None where the design has no formula or no spread was measured)."""
    if d.kind == "rates":
        return rate_power(n)
    if sd is None or not math.isfinite(sd):
        return None
    if d.kind == "difference":
        margin = (d.margin_for(profile) or 0.0) if d.claim in ("E5", "U3") else 0.0
        return stats.power_difference(d.effect - margin, sd, n)
    if d.kind == "noninferiority":
        return stats.power_noninferiority(d.effect, d.margin_for(profile), sd, n)
    return None


def rate_power(n: int, p_train: float = 1.0, p_fail: float = 0.0, sims: int = 500,
               alpha: float = ALPHA) -> float:
    """Power of T2's and T3's core test with ``n`` seeds per arm: the arm that should train has its
    Clopper-Pearson interval above one half and Fisher's exact one-sided test rejects at ``alpha``
    (the study's; Holm's first step over k tests: alpha / k), when the true trained shares are
    ``p_train`` and ``p_fail`` (simulated, binomial draws)."""
    def draw(rng, k):
        return int(rng.binomial(k, p_train)), int(rng.binomial(k, p_fail))

    return stats.power_by_simulation(lambda s: _rates_decide(*s, n, alpha), draw, n, sims=sims)


@functools.lru_cache(maxsize=65536)
def _rates_decide(a: int, b: int, n: int, alpha: float) -> bool:
    """``rate_power``'s decision for ``a`` and ``b`` of ``n`` runs trained (at most (n+1)^2
    outcomes: each decided once)."""

    return stats.clopper_pearson(a, n).low > 0.5 and more_often([1] * a + [0] * (n - a),
                                                                 [1] * b + [0] * (n - b)) < alpha


def observed_rates(claim: str, numbers: Mapping[str, Any]) -> dict[str, Any] | None:
    """For T2 and T3, the trained shares the runs showed where the effect was largest (T2: post-norm
    with warm-up against without, per rate; T3: pre-norm against post-norm, per depth) and how many
    tests Holm spreads alpha over: ``{"where", "p_train", "p_fail", "tests"}``, or None (another
    claim, or no shares recorded)."""
    keys = {"T2": ("per_lr", "post_warmup", "post_no_warmup", "lr"),
            "T3": ("per_depth", "pre_trained", "post_trained", "depth")}.get(claim)
    per = numbers.get(keys[0]) if keys else None
    if not isinstance(per, Mapping) or not per:
        return None
    shares = {k: (v[keys[1]]["estimate"], v[keys[2]]["estimate"]) for k, v in per.items()
              if isinstance(v, Mapping) and keys[1] in v and keys[2] in v}
    if not shares:
        return None
    where, (p_train, p_fail) = max(shares.items(), key=lambda kv: kv[1][0] - kv[1][1])
    return {"where": f"{keys[3]} {where}", "p_train": float(p_train), "p_fail": float(p_fail),
            "tests": len(per)}


def seeds_at_observed_rates(obs: Mapping[str, Any], most: int = 60) -> int | None:
    """Seeds per arm for power ``TARGET_POWER`` if the true shares were the observed ones
    (``observed_rates``), at Holm's first-step alpha; None if ``most`` seeds fall short (the arms'
    shares are too close)."""
    if obs["p_train"] <= obs["p_fail"]:
        return None
    return stats.seeds_for_power(lambda n: rate_power(n, obs["p_train"], obs["p_fail"], sims=300,
                                                      alpha=ALPHA / obs["tests"]), TARGET_POWER,
                                 start=2, most=most)


def seeds_needed(d: Design, sd: float | None, profile: str = "quick") -> int | None:
    """Seeds for power ``TARGET_POWER`` at ``d``'s stated effect (None where no power can be
    computed or even 200 seeds fall short)."""
    if power(d, sd, 5, profile) is None:
        return None
    return stats.seeds_for_power(lambda n: power(d, sd, n, profile), TARGET_POWER, start=2,
                                 most=200)


def table(profile: str) -> list[dict[str, Any]]:
    """Every design row for ``profile`` (the paper's appendix)."""
    return [d.row(profile) for d in DESIGNS.values()]
