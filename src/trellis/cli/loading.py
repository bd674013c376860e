"""Resolve what the user named on the command line: a manifest file or ``MODULE:ATTR``."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from trellis.contracts import Contract


class SourceError(Exception):
    """The named contract could not be loaded (message is meant for the user)."""


def load_attribute(spec: str) -> Any:
    """The object ``MODULE:ATTR`` names, the current directory importable (as ``python -m``)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SourceError(f"{spec!r} is not of the form MODULE:ATTR")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SourceError(f"cannot import module {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SourceError(f"module {module_name!r} has no attribute {attr!r}") from None


def load_contract_object(spec: str) -> Contract:
    value = load_attribute(spec)
    if not isinstance(value, Contract):
        raise SourceError(f"{spec} is a {type(value).__name__}, not a trellis Contract")
    return value


def load_manifest(source: str) -> dict[str, Any]:
    """A manifest dict from a JSON file path or a ``MODULE:ATTR`` contract object."""
    path = Path(source)
    if path.suffix == ".json" or path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SourceError(f"cannot read {source}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise SourceError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise SourceError(f"{source} does not hold a JSON object")
        return data
    return load_contract_object(source).manifest
