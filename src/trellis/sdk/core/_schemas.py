"""The JSON Schemas of ``trellis.core@v1``, verbatim from its manifest (generated)."""

# fmt: off
# ruff: noqa: E501, RUF100

from typing import Any

SCHEMAS: dict[str, Any] = {
    "Empty": {"description": "No input.", "properties": {}, "title": "Empty", "type": "object"},
    "Catalog": {
        "properties": {
            "format": {
                "const": "trellis.catalog.v1",
                "default": "trellis.catalog.v1",
                "title": "Format",
                "type": "string",
            },
            "contracts": {
                "items": {
                    "properties": {
                        "id": {"title": "Id", "type": "string"},
                        "digest": {"title": "Digest", "type": "string"},
                        "displayName": {"title": "Displayname", "type": "string"},
                        "description": {"title": "Description", "type": "string"},
                    },
                    "required": ["id", "digest", "displayName", "description"],
                    "title": "CatalogEntry",
                    "type": "object",
                },
                "title": "Contracts",
                "type": "array",
            },
        },
        "required": ["contracts"],
        "title": "Catalog",
        "type": "object",
    },
    "ContractGetInput": {
        "properties": {"digest": {"title": "Digest", "type": "string"}},
        "required": ["digest"],
        "title": "ContractGetInput",
        "type": "object",
    },
    "ContractGetOutput": {
        "properties": {"contract": {"additionalProperties": True, "title": "Contract", "type": "object"}},
        "required": ["contract"],
        "title": "ContractGetOutput",
        "type": "object",
    },
    "BindingsGetInput": {
        "properties": {
            "contractId": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "default": None,
                "title": "Contractid",
            },
            "digest": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Digest"},
        },
        "title": "BindingsGetInput",
        "type": "object",
    },
    "BindingsGetOutput": {
        "properties": {
            "binding": {
                "anyOf": [{"additionalProperties": True, "type": "object"}, {"type": "null"}],
                "default": None,
                "title": "Binding",
            },
        },
        "title": "BindingsGetOutput",
        "type": "object",
    },
    "SurfaceStatusInput": {
        "properties": {
            "contractId": {"title": "Contractid", "type": "string"},
            "surface": {"title": "Surface", "type": "string"},
            "kind": {
                "default": "rpc",
                "enum": ["rpc", "event", "operation", "feed"],
                "title": "Kind",
                "type": "string",
            },
        },
        "required": ["contractId", "surface"],
        "title": "SurfaceStatusInput",
        "type": "object",
    },
    "SurfaceStatusOutput": {
        "properties": {
            "status": {
                "enum": ["unknown_contract", "unknown_surface", "unauthorized", "unavailable", "available"],
                "title": "Status",
                "type": "string",
            },
        },
        "required": ["status"],
        "title": "SurfaceStatusOutput",
        "type": "object",
    },
}
