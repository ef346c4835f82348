"""Rules for notebook 08 (accuracy per parameter): A1-A3."""

from __future__ import annotations

from .. import stats  # noqa: F401
from .core import RULES, Decision, _decide, _unconverged, rule  # noqa: F401

__all__: list[str] = []
