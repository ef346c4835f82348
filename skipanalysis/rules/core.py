"""The machinery shared by every rule: ``Decision``, the ``rule`` registry, verdict kinds and helpers.

Each rule takes the numbers a notebook measured and returns a ``Decision``:
the verdict, the rule's text and the numbers it used. The rule text lives here
once; the notebook prints it with the verdict and the report quotes it from the
claim file, so the three can never disagree. ``RULES`` maps claim IDs to rules.

Two kinds of claim (see ``../shared/CLAIMS.md``):
- identities and exact counts (``KIND_IDENTITY``): ``verified`` or ``failed``.
  They check our own code and arithmetic and never count as empirical support.
- empirical claims: ``supported``, ``refuted``, ``inconclusive`` (or ``not
  measured here``, for a device that was not there). A rule that reads
  unconverged runs says ``inconclusive`` with "not converged" in its numbers;
  "as good as" is a non-inferiority test with a margin fixed before the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from .. import stats  # noqa: F401  (rule modules use it through core)

EMPIRICAL_VERDICTS = ("supported", "refuted", "inconclusive", "not measured here")
IDENTITY_VERDICTS = ("verified", "failed")
VERDICTS = EMPIRICAL_VERDICTS + IDENTITY_VERDICTS
# Identities and exact counts (CLAIMS.md): E1-E4, C1, C2, C4. The operation-count half of C5 is checked inside
# C5's record; C5 itself (the addition's share of time) is empirical.
IDENTITY_CLAIMS = ("E1", "E2", "E3", "E4", "C1", "C2", "C4")


def claim_kind(claim_id: str) -> str:
    """``identity`` for identities and exact counts, else ``empirical``."""
    return "identity" if claim_id in IDENTITY_CLAIMS else "empirical"


@dataclass(frozen=True)
class Decision:
    """A rule's outcome: the verdict, the rule's text, and the numbers it read."""

    claim: str
    verdict: str
    rule: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        allowed = IDENTITY_VERDICTS if claim_kind(self.claim) == "identity" else EMPIRICAL_VERDICTS
        if self.verdict not in allowed:
            raise ValueError(f"verdict {self.verdict!r} is not allowed for {self.claim}; choose one of {allowed}")


RULES: dict[str, Callable[..., Decision]] = {}


def rule(claim_id: str, text: str):
    """Register a rule function for ``claim_id``; its ``text`` is the rule as printed with the verdict."""
    def wrap(fn: Callable[..., Decision]) -> Callable[..., Decision]:
        fn.claim_id, fn.text = claim_id, " ".join(text.split())
        RULES[claim_id] = fn
        return fn
    return wrap


def text(claim_id: str) -> str:
    """The rule text for a claim, as the notebooks and the report quote it."""
    return RULES[claim_id].text


def _decide(claim: str, supported: bool, refuted: bool, numbers: dict[str, Any]) -> Decision:
    if supported and refuted:
        raise ValueError(f"{claim}: the rule both supports and refutes; its conditions overlap")
    verdict = "supported" if supported else "refuted" if refuted else "inconclusive"
    return Decision(claim, verdict, RULES[claim].text, numbers)


def _unconverged(claim: str, converged: Iterable[bool] | None, numbers: dict[str, Any]) -> Decision | None:
    """An ``inconclusive`` decision naming the unconverged runs, or None when all converged."""
    flags = list(converged) if converged is not None else []
    if flags and not all(flags):
        numbers = {**numbers, "not converged": f"{sum(not f for f in flags)} of {len(flags)} runs"}
        return Decision(claim, "inconclusive", RULES[claim].text, numbers)
    return None


def identity(claim_id: str, holds: bool, text_: str, numbers: dict[str, Any]) -> Decision:
    """An identity or exact count: ``verified`` when ``holds``, else ``failed``; ``text_`` states the check."""
    if claim_kind(claim_id) != "identity":
        raise ValueError(f"{claim_id} is an empirical claim, not an identity; use its rule in RULES")
    return Decision(claim_id, "verified" if holds else "failed", " ".join(text_.split()), numbers)
