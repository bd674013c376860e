"""The JSON Schemas of ``trellis.state@v1``, verbatim from its manifest (generated)."""

# fmt: off
# ruff: noqa: E501, RUF100

from typing import Any

SCHEMAS: dict[str, Any] = {
    "StateKey": {
        "properties": {
            "store": {"title": "Store", "type": "string"},
            "key": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Key"},
        },
        "required": ["store"],
        "title": "StateKey",
        "type": "object",
    },
    "StateEntry": {
        "properties": {
            "found": {"title": "Found", "type": "boolean"},
            "value": {"default": None, "title": "Value"},
            "revision": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None, "title": "Revision"},
        },
        "required": ["found"],
        "title": "StateEntry",
        "type": "object",
    },
    "StatePutInput": {
        "properties": {
            "store": {"title": "Store", "type": "string"},
            "key": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Key"},
            "value": {"title": "Value"},
            "expectedRevision": {
                "anyOf": [{"type": "integer"}, {"type": "null"}],
                "default": None,
                "title": "Expectedrevision",
            },
        },
        "required": ["store", "value"],
        "title": "StatePutInput",
        "type": "object",
    },
    "Ack": {
        "properties": {"success": {"default": True, "title": "Success", "type": "boolean"}},
        "title": "Ack",
        "type": "object",
    },
    "StateListOutput": {
        "properties": {"keys": {"items": {"type": "string"}, "title": "Keys", "type": "array"}},
        "required": ["keys"],
        "title": "StateListOutput",
        "type": "object",
    },
}
