"""Rules for notebook 03 (equivalence): E5 (E1-E4 are identities, checked with core.identity)."""

from __future__ import annotations

from .. import stats  # noqa: F401
from .core import RULES, Decision, _decide, _unconverged, rule  # noqa: F401

__all__: list[str] = []
