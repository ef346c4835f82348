"""Rules for notebook 04 (cost on real hardware): C3, C5-C8 (C1, C2, C4 are exact counts, checked with core.identity)."""

from __future__ import annotations

from .. import stats  # noqa: F401
from .core import RULES, Decision, _decide, _unconverged, rule  # noqa: F401

__all__: list[str] = []
