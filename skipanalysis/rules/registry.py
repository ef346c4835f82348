"""Every claim's rule at once: importing this module imports every rule module, so ``RULES``
(empirical rules) and ``CHECKS`` (identity checks) hold every claim ID. For what handles all claims
together: the report, the bundle's recomputation, the design table. A notebook imports only its own
rule module."""

from __future__ import annotations

from . import (  # noqa: F401 (registers)
               conclusion,
               cost,
               degradation,
               equivalence,
               gradient_flow,
               loss_landscape,
               param_efficiency,
               transformer_norm,
               unet_skips,
)
from .core import CHECKS, RULES, decider, decode, text

__all__ = ["CHECKS", "RULES", "decider", "decode", "text"]
