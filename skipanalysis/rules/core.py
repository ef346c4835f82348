"""The machinery shared by every rule: ``Decision``, the ``rule`` registry, verdict kinds and
helpers.

Each rule takes the numbers a notebook measured and returns a ``Decision``: the verdict, the rule's
text and the numbers it used. The rule text lives here once; the notebook prints it with the verdict
and the report quotes it from the claim file, so the three can never disagree. ``RULES`` maps claim
IDs to rules.

Two kinds of claim (``claim_kind``):
- identities and exact counts (``KIND_IDENTITY``): ``verified`` or ``failed``. They check our own
  code and arithmetic and never count as empirical support.
- empirical claims: ``supported``, ``refuted``, ``inconclusive`` (or ``not measured here``, for a
  device that was not there). A rule that reads unconverged runs says ``inconclusive`` with "not
  converged" in its numbers; "as good as" is a non-inferiority test with a margin fixed before the
  run.

Leave one seed out is a sensitivity analysis, never a veto: a rule declares which of its arguments
hold per-seed samples (``rule(..., per_seed=...)``; timing rules declare per-round samples with
``unit="round"``). A ``supported`` or ``refuted`` verdict is recomputed with each seed left out in
turn, from every per-seed argument at once, and the verdicts without each seed are reported beside
it (``leave_one_seed_out``, ``sensitivity``); the verdict stands. What keeps a verdict from resting
on luck is the planned number of seeds (``skipanalysis.design``): a verdict reached with fewer seeds
than the design plans reads inconclusive, "underpowered" (``ClaimBook.record``). The numbers carry
``seeds``, how many seeds (or rounds) the rule read. The minimum-sample requirements a rule checks
(``needed``) drop by one for the re-computations, so a rule that needs five seeds can be checked on
four.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EMPIRICAL_VERDICTS = ("supported", "refuted", "inconclusive", "not measured here")
IDENTITY_VERDICTS = ("verified", "failed")
VERDICTS = EMPIRICAL_VERDICTS + IDENTITY_VERDICTS
# Identities and exact counts (CLAIMS.md): E1-E4, C1, C2, C4. The operation-count half of C5 is
# checked inside
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
    # What the rule function was given (``{"function": ..., "arguments": encode(...)}``), so the
    # verdict can be
    # recomputed from the claim file alone (``skipanalysis.pipeline.bundle verify``); None for a
    # decision built by hand.
    inputs: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        allowed = IDENTITY_VERDICTS if claim_kind(self.claim) == "identity" else EMPIRICAL_VERDICTS
        if self.verdict not in allowed:
            raise ValueError(f"verdict {self.verdict!r} is not allowed for {self.claim}; "
                             f"choose one of {allowed}")


RULES: dict[str, Callable[..., Decision]] = {}
# the identity checks (E1-E4, C1, C2, C4) by claim ID
CHECKS: dict[str, Callable[..., Decision]] = {}
_LEAVING_OUT = contextvars.ContextVar("leaving_out", default=False)
DECIDED = ("supported", "refuted")


def needed(n: int) -> int:
    """A rule's minimum sample size ``n``; one less while a seed (or round) is being left out."""
    return n - 1 if _LEAVING_OUT.get() else n


def _robustness_text(unit: str) -> str:
    return ("Sensitivity (reported, not a veto): a supported or refuted verdict is recomputed "
            f"with each {unit} left out in turn (minimum sample sizes lowered by one) and the "
            f"verdicts without each {unit} are shown beside it. A verdict reached with fewer "
            f"{unit}s than the design plans reads inconclusive (underpowered).")


def rule(claim_id: str, text: str, per_seed: Sequence[str] = (), unit: str = "seed",
         labelled: Sequence[str] = (), labels: str | None = None):
    """Register a rule function for ``claim_id``; its ``text`` is the rule as printed with the
    verdict.

    ``per_seed`` names the arguments whose entries are per-seed samples in seed order (index ``i``
    is the ``i``-th seed); a mapping's values and a list of dicts with a ``"seed"`` key count too.
    ``labelled`` names flat arguments (one entry per point, e.g. per depth and seed) whose seed is
    given by the argument ``labels``. With any of them, the rule is recomputed with each seed left
    out (``leave_one_out``) and a decision that one seed carries reads ``inconclusive``. ``unit``
    names the replicate in the messages (``"round"`` for timings).
    """
    def wrap(fn: Callable[..., Decision]) -> Callable[..., Decision]:
        robust = bool(per_seed or labelled)
        sig = inspect.signature(fn)
        for name in (*per_seed, *labelled, *([labels] if labels else [])):
            if name not in sig.parameters:
                raise TypeError(f"rule {claim_id}: {name!r} is not an argument of {fn.__name__}")

        @functools.wraps(fn)
        def decide(*args: Any, **kwargs: Any) -> Decision:
            arguments = _arguments(sig, args, kwargs)
            full = fn(**arguments)
            if _LEAVING_OUT.get():
                return full
            if not robust:
                return _with_inputs(full, fn, arguments)
            ids = _seed_ids(arguments, per_seed, labelled, labels)
            full = Decision(full.claim, full.verdict, full.rule,
                            {**full.numbers, f"{unit}s": len(ids)})
            if full.verdict not in DECIDED:
                return _with_inputs(full, fn, arguments)
            if labelled and arguments.get(labels) is None:
                return _with_inputs(Decision(full.claim, full.verdict, full.rule,
                                             {**full.numbers,
                                              "robustness": f"not checked: no {labels!r} given"}),
                                    fn, arguments)
            return _with_inputs(
                leave_one_out(fn, full, arguments, per_seed, labelled, labels, unit), fn,
                                arguments)

        decide.claim_id = claim_id
        decide.text = " ".join(text.split()) + (" " + _robustness_text(unit) if robust else "")
        decide.per_seed, decide.labelled, decide.unit = tuple(per_seed), tuple(labelled), unit
        RULES[claim_id] = decide
        return decide
    return wrap


def check(claim_id: str):
    """Register an identity check (E1-E4, C1, C2, C4) for ``claim_id``: its decision carries its
    inputs, as a rule's does, so the verdict can be recomputed from the claim file."""
    def wrap(fn: Callable[..., Decision]) -> Callable[..., Decision]:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def decide(*args: Any, **kwargs: Any) -> Decision:
            arguments = _arguments(sig, args, kwargs)
            return _with_inputs(fn(**arguments), fn, arguments)

        decide.claim_id = claim_id
        CHECKS[claim_id] = decide
        return decide
    return wrap


def decider(claim_id: str) -> Callable[..., Decision] | None:
    """The function that decides ``claim_id``: its rule, or its identity check; None when it has
    neither."""
    return RULES.get(claim_id) or CHECKS.get(claim_id)


def _arguments(sig: inspect.Signature, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by name, defaults filled in, one-shot iterators (a generator of flags)
    made lists so the rule and its record read the same values."""
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    return {k: list(v) if isinstance(v, Iterator) else v for k, v in bound.arguments.items()}


def _with_inputs(decision: Decision, fn: Callable, arguments: Mapping[str, Any]) -> Decision:
    """``decision`` carrying the call that made it; arguments JSON cannot hold are named instead
    (the verdict then stands on its identity alone: ``bundle.verify`` says it was not recomputed),
    never an error in a notebook."""
    name = f"{fn.__module__}.{fn.__qualname__}"
    try:
        return dataclasses.replace(decision,
                                   inputs={"function": name, "arguments": encode(dict(arguments))})
    except TypeError as exc:
        return dataclasses.replace(decision, inputs={"function": name, "unrecorded": str(exc)})


def encode(value: Any) -> Any:
    """A rule's arguments as JSON that ``decode`` gives back exactly: numpy, torch and pandas values
    as plain lists and numbers, non-finite floats and mappings with keys that are not strings
    tagged."""
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"__items__": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"__tuple__": [encode(v) for v in value]} if isinstance(value, tuple) else [
            encode(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy, torch, pandas
        return encode(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"a rule argument of type {type(value).__name__} cannot be recorded as JSON")


def decode(value: Any) -> Any:
    """``encode``'s inverse."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        if set(value) == {"__tuple__"}:
            return tuple(decode(v) for v in value["__tuple__"])
        if set(value) == {"__items__"}:
            return {_hashable(decode(k)): decode(v) for k, v in value["__items__"]}
        return {k: decode(v) for k, v in value.items()}
    return value


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


def _entries(value: Any) -> list | None:
    """A per-seed argument as a list (sequences, arrays, pandas Series), or None for a mapping or
    scalar."""
    if value is None or isinstance(value, (str, bytes, Mapping)) or np.isscalar(value):
        return None
    return list(value)


def _seed_ids(arguments: Mapping[str, Any], per_seed: Sequence[str], labelled: Sequence[str],
              labels: str | None) -> list:
    """The seeds to leave out, in order: the distinct ``labels``, the ``"seed"`` keys of dict
    entries, or the positions of the longest per-seed sequence."""
    if labels and arguments.get(labels) is not None and labelled:
        return sorted(set(_entries(arguments[labels])))

    def walk(value: Any) -> tuple[set, int]:
        if isinstance(value, Mapping):
            found = [walk(v) for v in value.values()]
            return set().union(*(f[0] for f in found)), max((f[1] for f in found), default=0)
        items = _entries(value)
        if items is None:
            return set(), 0
        if items and all(isinstance(x, Mapping) and "seed" in x for x in items):
            return {x["seed"] for x in items}, 0
        return set(), len(items)
    found = [walk(arguments[name]) for name in per_seed]
    keyed = set().union(*(f[0] for f in found)) if found else set()
    return sorted(keyed) if keyed else list(range(max((f[1] for f in found), default=0)))


def _drop(value: Any, seed: Any, position: int) -> Any:
    """``value`` without the left-out seed: dict entries with that ``"seed"``, else the entry at
    ``position``."""
    if isinstance(value, Mapping):
        return {k: _drop(v, seed, position) for k, v in value.items()}
    items = _entries(value)
    if items is None:
        return value
    if items and all(isinstance(x, Mapping) and "seed" in x for x in items):
        return [x for x in items if x["seed"] != seed]
    return [x for i, x in enumerate(items) if i != position]


def leave_one_out(fn: Callable[..., Decision], full: Decision, arguments: Mapping[str, Any],
                  per_seed: Sequence[str], labelled: Sequence[str] = (), labels: str | None = None,
                  unit: str = "seed") -> Decision:
    """``full`` with the verdicts of ``fn`` recomputed with each seed left out, reported beside it
    (never a veto).

    The numbers gain ``leave_one_<unit>_out`` (the verdict without each seed) and ``sensitivity`` (a
    sentence: stable, or which seeds it moves with). Seeds given by labels or ``"seed"`` keys are
    named by their value; seeds given by position as ``#k``, the ``k``-th in order (1-based).
    """
    ids = _seed_ids(arguments, per_seed, labelled, labels)
    if len(ids) < 2:
        return full
    keyed = labels and arguments.get(labels) is not None and labelled
    out: dict[str, str] = {}
    token = _LEAVING_OUT.set(True)
    try:
        for j, seed in enumerate(ids):
            args = dict(arguments)
            for name in per_seed:
                args[name] = _drop(arguments[name], seed, j)
            if keyed:
                keep = [x != seed for x in _entries(arguments[labels])]
                for name in (*labelled, labels):
                    if arguments.get(name) is not None:
                        args[name] = [x for x, k in zip(_entries(arguments[name]), keep) if k]
            out[f"{seed}" if keyed or _is_keyed(arguments, per_seed) else f"#{j + 1}"] = fn(
                **args).verdict
    finally:
        _LEAVING_OUT.reset(token)
    flips = [f"{v} without {unit} {k}" for k, v in out.items() if v != full.verdict]
    numbers = {**full.numbers, f"leave_one_{unit}_out": out}
    if not flips:
        return Decision(full.claim, full.verdict, full.rule,
                        {**numbers,
                         "sensitivity": f"{full.verdict} with any one of {len(ids)} {unit}s left "
                                        "out"})
    return Decision(full.claim, full.verdict, full.rule,
                    {**numbers, "sensitivity": f"{full.verdict} on all {len(ids)} {unit}s; "
                     + "; ".join(flips)})


def _is_keyed(arguments: Mapping[str, Any], per_seed: Sequence[str]) -> bool:
    """Whether the seeds come from ``"seed"`` keys of dict entries (real seed numbers) rather than
    positions."""
    for name in per_seed:
        items = _entries(arguments[name])
        if items and all(isinstance(x, Mapping) and "seed" in x for x in items):
            return True
    return False


def text(claim_id: str) -> str:
    """The rule text for a claim, as the notebooks and the report quote it."""
    return RULES[claim_id].text


def _decide(claim: str, supported: bool, refuted: bool, numbers: dict[str, Any]) -> Decision:
    if supported and refuted:
        raise ValueError(f"{claim}: the rule both supports and refutes; its conditions overlap")
    verdict = "supported" if supported else "refuted" if refuted else "inconclusive"
    return Decision(claim, verdict, RULES[claim].text, numbers)


def _unconverged(claim: str, converged: Iterable[bool] | None,
                 numbers: dict[str, Any]) -> Decision | None:
    """An ``inconclusive`` decision naming the unconverged runs, or None when all converged."""
    flags = list(converged) if converged is not None else []
    if flags and not all(flags):
        numbers = {**numbers, "not converged": f"{sum(not f for f in flags)} of {len(flags)} runs"}
        return Decision(claim, "inconclusive", RULES[claim].text, numbers)
    return None


def identity(claim_id: str, holds: bool, text_: str, numbers: dict[str, Any]) -> Decision:
    """An identity or exact count: ``verified`` when ``holds``, else ``failed``; ``text_`` states
    the check."""
    if claim_kind(claim_id) != "identity":
        raise ValueError(
            f"{claim_id} is an empirical claim, not an identity; use its rule in RULES")
    return Decision(claim_id, "verified" if holds else "failed", " ".join(text_.split()), numbers)
