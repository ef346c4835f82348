"""The report's conclusion S1: no universal winner, from context-dependent empirical verdicts
only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .core import Decision, _decide, rule

__all__ = ["S1_CONTEXTS", "s1_contexts", "s1"]


# Which connection pattern wins in which context, by claim and verdict, both ways: a claim whose
# refutation names
# the other pattern maps that to a context too. Only empirical claims whose outcome names a winner
# in a context count;
# identities and counts never do. Each context belongs to a comparison ("pair"): dense against
# residual connectivity
# (C6, C8, A1, A2, and U3's merge: concatenation is the dense-style merge, addition the
# residual-style one), or
# pre-norm against post-norm placement (T2, T3).
DENSE_RESIDUAL, PRE_POST = "dense vs residual", "pre-norm vs post-norm"
S1_CONTEXTS: dict[str, dict[str, list[tuple[str, str]]]] = {
    # C6 (per GPU): supported = ResNet faster in wall-clock there; refuted = DenseNet faster.
    "C6": {"supported": [("wall-clock on {device}", "residual")],
           "refuted": [("wall-clock on {device}", "dense")]},
    # A1: accuracy per parameter on the data the notebook ran on.
    "A1": {"supported": [("accuracy per parameter on {data}", "dense")],
           "refuted": [("accuracy per parameter on {data}", "residual")]},
    # A2: scarce training data.
    "A2": {"supported": [("scarce data ({data})", "dense")],
           "refuted": [("scarce data ({data})", "residual")]},
    # T2: supported = pre-norm trains without the warm-up post-norm needs.
    "T2": {"supported": [("training without warm-up ({data})", "pre-norm")]},
    # T3: supported = pre-norm trains deep stacks where post-norm fails; refuted = the reverse.
    "T3": {"supported": [("deep stacks ({data})", "pre-norm")],
           "refuted": [("deep stacks ({data})", "post-norm")]},
}
PAIRS = {"dense": DENSE_RESIDUAL, "residual": DENSE_RESIDUAL, "pre-norm": PRE_POST,
         "post-norm": PRE_POST}


def _numbers(record: dict[str, Any]) -> dict[str, Any]:
    return (record.get("evidence") or {}).get("rule_numbers") or {}


def _sides(record: dict[str, Any]) -> list[tuple[str, str]]:
    """C8 and U3 name their winners in their numbers, whatever the verdict: each side decided by its
    interval."""
    nums, device = _numbers(record), record.get("device", "?")
    out = []
    if record["id"] == "C8" and record["verdict"] in ("supported", "refuted"):
        for key, ctx in (("load_time_ratio", "storage-bound on {device}"), ("train_time_ratio",
                                                                           "throughput-bound on "
                                                                           "{device}")):
            iv = nums.get(key) or {}
            if isinstance(iv.get("high"), (int, float)) and iv["high"] < 1:
                out.append((ctx.format(device=device), "dense"))
            elif isinstance(iv.get("low"), (int, float)) and iv["low"] > 1:
                out.append((ctx.format(device=device), "residual"))
    if record["id"] == "U3" and record["verdict"] == "supported":
        winner = {"concat": "dense", "add": "residual"}.get(nums.get("winner"))
        if winner:
            out.append(("U-Net skip merge on {data}", winner))
    return out


def s1_contexts(records: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """The (context, winner, pair, claim) entries the decided empirical claims give S1."""
    out = []
    for r in records:
        data = str((r.get("evidence") or {}).get("data", "the data used"))
        found = S1_CONTEXTS.get(r["id"], {}).get(r["verdict"], []) + _sides(r)
        for ctx, winner in found:
            out.append(
                {"context": ctx.format(device=r.get("device", "?"), data=data), "winner": winner,
                        "pair": PAIRS[winner], "claim": r["id"]})
    return out


@rule("S1", """From the context-dependent empirical verdicts only (per device: C6, C8 side by side;
per data: A1, A2; per task: U3's merge, T2, T3; never identities or counts), each naming which
pattern wins in its context, in either direction (a refutation that names the other pattern counts
as much as a support). Within a comparison (dense against residual connectivity, or pre-norm against
post-norm placement): supported if both patterns win somewhere and the opposing wins come from at
least two independent claims (so never from C8's two sides alone); refuted if at least two claims
decided contexts of a comparison and one pattern wins all of them (a universal winner there) and no
comparison supports; inconclusive otherwise.""")
def s1(contexts: Sequence[dict[str, str]]) -> Decision:
    by_pair: dict[str, dict[str, set[str]]] = {}
    for c in contexts:
        pair = c.get("pair") or PAIRS.get(c["winner"], DENSE_RESIDUAL)
        by_pair.setdefault(pair, {}).setdefault(c["winner"], set()).add(c["claim"])
    opposing, universal = [], []
    for pair, wins in by_pair.items():
        claims = set().union(*wins.values())
        sides = list(wins.values())
        if len(sides) == 2 and any(a != b for a in sides[0] for b in sides[1]):
            opposing.append(pair)
        elif len(wins) == 1 and len(claims) >= 2:
            universal.append(
                f"{pair}: {next(iter(wins))} wins every decided context "
                f"({', '.join(sorted(claims))})")
    nums = {"contexts": list(contexts), "decided_contexts": len({c["context"] for c in contexts}),
            "winners_by_comparison": {p: {w: sorted(c) for w, c in ws.items()} for p,
                                      ws in by_pair.items()},
            "opposing": opposing, "universal": universal}
    return _decide("S1", bool(opposing), not opposing and bool(universal), nums)
