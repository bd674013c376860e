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
                "anyOf": [
                    {
                        "description": "What a service deployment's contract is bound to (``trellis.bindings``).",
                        "properties": {
                            "contractId": {"title": "Contractid", "type": "string"},
                            "digest": {"title": "Digest", "type": "string"},
                            "resources": {
                                "description": "What a service deployment's logical resources are bound to.",
                                "properties": {
                                    "kv": {
                                        "additionalProperties": {
                                            "description": "A ``resources.kv`` alias: its bucket and the settings it was created with.",
                                            "properties": {
                                                "bucket": {"title": "Bucket", "type": "string"},
                                                "history": {
                                                    "default": 1,
                                                    "title": "History",
                                                    "type": "integer",
                                                },
                                                "ttlMs": {"default": 0, "title": "Ttlms", "type": "integer"},
                                                "maxValueBytes": {
                                                    "anyOf": [{"type": "integer"}, {"type": "null"}],
                                                    "default": None,
                                                    "title": "Maxvaluebytes",
                                                },
                                            },
                                            "required": ["bucket"],
                                            "title": "KvResourceBinding",
                                            "type": "object",
                                        },
                                        "title": "Kv",
                                        "type": "object",
                                    },
                                    "eventConsumers": {
                                        "additionalProperties": {
                                            "description": "An ``eventConsumers`` group: the durable consumer on the event stream and its settings.",
                                            "properties": {
                                                "stream": {"title": "Stream", "type": "string"},
                                                "consumerName": {"title": "Consumername", "type": "string"},
                                                "filterSubjects": {
                                                    "items": {"type": "string"},
                                                    "title": "Filtersubjects",
                                                    "type": "array",
                                                },
                                                "replay": {
                                                    "default": "new",
                                                    "enum": ["new", "all"],
                                                    "title": "Replay",
                                                    "type": "string",
                                                },
                                                "ordering": {
                                                    "const": "strict",
                                                    "default": "strict",
                                                    "title": "Ordering",
                                                    "type": "string",
                                                },
                                                "concurrency": {
                                                    "default": 1,
                                                    "title": "Concurrency",
                                                    "type": "integer",
                                                },
                                                "ackWaitMs": {"title": "Ackwaitms", "type": "integer"},
                                                "maxDeliver": {"title": "Maxdeliver", "type": "integer"},
                                                "backoffMs": {
                                                    "items": {"type": "integer"},
                                                    "title": "Backoffms",
                                                    "type": "array",
                                                },
                                            },
                                            "required": ["stream", "consumerName", "ackWaitMs", "maxDeliver"],
                                            "title": "EventConsumerResourceBinding",
                                            "type": "object",
                                        },
                                        "title": "Eventconsumers",
                                        "type": "object",
                                    },
                                    "streams": {
                                        "additionalProperties": {
                                            "description": "Our ``resources.streams`` extension: the physical stream and its physical subjects.",
                                            "properties": {
                                                "stream": {"title": "Stream", "type": "string"},
                                                "subjects": {
                                                    "items": {"type": "string"},
                                                    "title": "Subjects",
                                                    "type": "array",
                                                },
                                            },
                                            "required": ["stream", "subjects"],
                                            "title": "StreamResourceBinding",
                                            "type": "object",
                                        },
                                        "title": "Streams",
                                        "type": "object",
                                    },
                                },
                                "title": "ContractResourceBindings",
                                "type": "object",
                            },
                        },
                        "required": ["contractId", "digest", "resources"],
                        "title": "InstalledBinding",
                        "type": "object",
                    },
                    {"type": "null"},
                ],
                "default": None,
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
