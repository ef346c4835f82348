"""The metadata a notebook's outputs carry for the report, named once.

``notebook.py`` marks the machine fingerprint, ``plotting.save_figure`` marks each figure's caption,
and ``pipeline.paper`` reads both marks (it drops the fingerprints, which the appendix lists, and
numbers the captions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NAMESPACE = "skipanalysis"  # the key under an output's metadata
# {ROLE: FINGERPRINT}: the machine fingerprint printed by setup()
ROLE, FINGERPRINT = "role", "fingerprint"
# a figure's caption and its stable file stem (<notebook>-<name>)
CAPTION, FIGURE = "caption", "figure"


def mark(**fields: Any) -> dict[str, dict[str, Any]]:
    """Output metadata carrying ``fields`` under the project's key, e.g.
    ``mark(role=FINGERPRINT)``."""
    return {NAMESPACE: dict(fields)}


def marks(output: Mapping[str, Any]) -> dict[str, Any]:
    """The project's fields of one notebook output (empty when it has none)."""
    return dict(output.get("metadata", {}).get(NAMESPACE, {}))
