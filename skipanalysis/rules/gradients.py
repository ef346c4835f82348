"""Rules for notebook 02 (gradient flow): G1-G6."""

from __future__ import annotations

from .. import stats  # noqa: F401
from .core import RULES, Decision, _decide, _unconverged, rule  # noqa: F401

__all__: list[str] = []
