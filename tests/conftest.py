"""Shared test helpers: the test kit's fixtures, and where the upstream conformance material
lives: the vectors and schemas the tests use are copied into ``tests/data/conformance`` (so a
fresh clone runs them); anything else is read from the shared folder next to the project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT.parent / "shared" / "conformance"
#: the project's own copy (tests/data/conformance/README.md says where it came from)
OWN_CONFORMANCE = ROOT / "tests" / "data" / "conformance"

#: ``trellis_deployment``: a real nats-server and runtime per test, as users get it;
#: ``pytester`` runs the README's test-kit example as a project of its own
pytest_plugins = ["trellis.testing", "pytester"]


def conformance(relative: str) -> Any:
    """Load a conformance file: the project's copy, else the shared folder; skip cleanly when
    neither has it."""
    path = OWN_CONFORMANCE / relative
    if not path.is_file():
        path = CONFORMANCE / relative
    if not path.is_file():
        pytest.skip(f"conformance material not present: {path}")
    return json.loads(path.read_text(encoding="utf-8"))
