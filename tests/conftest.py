"""Shared test helpers: the test kit's fixtures, and where the upstream conformance material
lives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT.parent / "shared" / "conformance"

#: ``trellis_deployment``: a real nats-server and runtime per test, as users get it;
#: ``pytester`` runs the README's test-kit example as a project of its own
pytest_plugins = ["trellis.testing", "pytester"]


def conformance(relative: str) -> Any:
    """Load a conformance file, skipping the test cleanly when shared/ is absent."""
    path = CONFORMANCE / relative
    if not path.is_file():
        pytest.skip(f"conformance material not present: {path}")
    return json.loads(path.read_text(encoding="utf-8"))
