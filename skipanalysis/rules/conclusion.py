"""The report's conclusion S1: no universal winner, from context-dependent empirical verdicts only."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from .core import Decision, _decide, rule

__all__ = ["S1_CONTEXTS", "s1_contexts", "s1"]


# Which connection pattern wins in which context, by claim and verdict. Only empirical claims whose outcome names a
# winner in a context (device, data size, task) count; identities and counts never do.
S1_CONTEXTS: dict[str, dict[str, list[tuple[str, str]]]] = {
    # C6 (per GPU): supported = ResNet faster in wall-clock there; refuted = DenseNet faster.
    "C6": {"supported": [("wall-clock on {device}", "residual")], "refuted": [("wall-clock on {device}", "dense")]},
    # C8 (per device): supported = DenseNet wins where storage/bandwidth dominate, ResNet where throughput does.
    "C8": {"supported": [("storage-bound on {device}", "dense"), ("throughput-bound on {device}", "residual")]},
    # A1: accuracy per parameter on the full training set.
    "A1": {"supported": [("accuracy per parameter, full data", "dense")],
           "refuted": [("accuracy per parameter, full data", "residual")]},
    # A2: scarce training data.
    "A2": {"supported": [("scarce data", "dense")], "refuted": [("scarce data", "residual")]},
}


def s1_contexts(records: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """The (context, winner, claim) entries the decided empirical claims give S1."""
    out = []
    for r in records:
        for ctx, winner in S1_CONTEXTS.get(r["id"], {}).get(r["verdict"], []):
            out.append({"context": ctx.format(device=r.get("device", "?")), "winner": winner, "claim": r["id"]})
    return out


@rule("S1", """From the context-dependent empirical verdicts only (per device: C6, C8; per data size: A1, A2; never
identities or counts), each naming which pattern wins in its context. Supported if opposing winners (dense in one
context, residual in another) appear in at least two contexts measured here; refuted if at least two contexts were
decided and one pattern wins all of them; inconclusive when fewer than two contexts were decided.""")
def s1(contexts: Sequence[dict[str, str]]) -> Decision:
    decided = {c["context"]: c["winner"] for c in contexts}
    winners = set(decided.values())
    nums = {"contexts": list(contexts), "decided_contexts": len(decided)}
    return _decide("S1", len(decided) >= 2 and len(winners) >= 2, len(decided) >= 2 and len(winners) == 1, nums)
