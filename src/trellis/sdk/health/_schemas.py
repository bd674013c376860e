"""The JSON Schemas of ``trellis.health@v1``, verbatim from its manifest (generated)."""

# fmt: off
# ruff: noqa: E501, RUF100

from typing import Any

SCHEMAS: dict[str, Any] = {
    "HealthHeartbeat": {
        "properties": {
            "header": {
                "properties": {
                    "id": {"title": "Id", "type": "string"},
                    "time": {"title": "Time", "type": "string"},
                },
                "required": ["id", "time"],
                "title": "EventHeader",
                "type": "object",
            },
            "service": {
                "properties": {
                    "name": {"title": "Name", "type": "string"},
                    "kind": {"enum": ["service", "device"], "title": "Kind", "type": "string"},
                    "instanceId": {"title": "Instanceid", "type": "string"},
                    "contractId": {"title": "Contractid", "type": "string"},
                    "contractDigest": {"title": "Contractdigest", "type": "string"},
                    "startedAt": {"title": "Startedat", "type": "string"},
                    "publishIntervalMs": {"minimum": 1, "title": "Publishintervalms", "type": "integer"},
                    "runtime": {
                        "default": "python",
                        "enum": ["deno", "node", "rust", "python", "unknown"],
                        "title": "Runtime",
                        "type": "string",
                    },
                    "runtimeVersion": {
                        "anyOf": [{"type": "string"}, {"type": "null"}],
                        "default": None,
                        "title": "Runtimeversion",
                    },
                    "version": {
                        "anyOf": [{"type": "string"}, {"type": "null"}],
                        "default": None,
                        "title": "Version",
                    },
                    "info": {
                        "anyOf": [{"additionalProperties": True, "type": "object"}, {"type": "null"}],
                        "default": None,
                        "title": "Info",
                    },
                },
                "required": [
                    "name",
                    "kind",
                    "instanceId",
                    "contractId",
                    "contractDigest",
                    "startedAt",
                    "publishIntervalMs",
                ],
                "title": "HeartbeatService",
                "type": "object",
            },
            "status": {"enum": ["healthy", "unhealthy", "degraded"], "title": "Status", "type": "string"},
            "summary": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Summary"},
            "checks": {
                "items": {
                    "properties": {
                        "name": {"title": "Name", "type": "string"},
                        "status": {"enum": ["ok", "failed"], "title": "Status", "type": "string"},
                        "error": {
                            "anyOf": [{"type": "string"}, {"type": "null"}],
                            "default": None,
                            "title": "Error",
                        },
                        "summary": {
                            "anyOf": [{"type": "string"}, {"type": "null"}],
                            "default": None,
                            "title": "Summary",
                        },
                        "info": {
                            "anyOf": [{"additionalProperties": True, "type": "object"}, {"type": "null"}],
                            "default": None,
                            "title": "Info",
                        },
                        "latencyMs": {"title": "Latencyms", "type": "number"},
                    },
                    "required": ["name", "status", "latencyMs"],
                    "title": "HealthCheck",
                    "type": "object",
                },
                "title": "Checks",
                "type": "array",
            },
        },
        "required": ["header", "service", "status", "checks"],
        "title": "HealthHeartbeat",
        "type": "object",
    },
}
