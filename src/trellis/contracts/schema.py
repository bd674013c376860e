"""JSON Schemas from pydantic models, made self-contained for manifests.

Upstream forbids ``$ref`` inside embedded schemas: a manifest's cross-schema references are
the ``{"schema": "Name"}`` fields (rpc input/output, event, kv ...).  Pydantic puts nested
models in ``$defs`` and points at them with ``$ref``; here those are inlined so each schema
stands alone.  Recursive models cannot be inlined and are refused with a clear message.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["SchemaError", "inline_refs", "model_schema", "self_contained"]


class SchemaError(ValueError):
    """A model cannot be expressed as a self-contained schema."""


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The validation-mode JSON Schema of ``model`` with every ``$ref`` inlined."""
    return inline_refs(model.model_json_schema(mode="validation"), model.__name__)


def inline_refs(schema: dict[str, Any], name: str) -> dict[str, Any]:
    defs: dict[str, Any] = dict(schema.get("$defs", {}))
    root = {k: v for k, v in schema.items() if k != "$defs"}
    result = _inline(root, defs, (), name)
    if not isinstance(result, dict):  # pragma: no cover - roots are objects
        raise SchemaError(f"schema of {name} is not an object")
    return result


def _inline(node: Any, defs: dict[str, Any], stack: tuple[str, ...], name: str) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs, stack, name) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        prefix = "#/$defs/"
        if not ref.startswith(prefix) or ref[len(prefix) :] not in defs:
            raise SchemaError(f"{name}: unsupported reference {ref!r}")
        target = ref[len(prefix) :]
        if target in stack:
            raise SchemaError(
                f"{name}: recursive model {target!r} cannot be embedded in a contract "
                "(manifest schemas must be self-contained)"
            )
        resolved = _inline(defs[target], defs, (*stack, target), name)
        siblings = {k: _inline(v, defs, stack, name) for k, v in node.items() if k != "$ref"}
        if siblings:
            return {**resolved, **siblings}
        return resolved
    return {key: _inline(value, defs, stack, name) for key, value in node.items()}


def self_contained(node: Any) -> bool:
    """True when no ``$ref`` appears anywhere in a manifest schema."""
    if isinstance(node, dict):
        return "$ref" not in node and all(self_contained(v) for v in node.values())
    if isinstance(node, list):
        return all(self_contained(v) for v in node)
    return True
