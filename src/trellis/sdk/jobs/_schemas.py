"""The JSON Schemas of ``trellis.jobs@v1``, verbatim from its manifest (generated)."""

# fmt: off
# ruff: noqa: E501, RUF100

from typing import Any

SCHEMAS: dict[str, Any] = {
    "Empty": {"description": "No input.", "properties": {}, "title": "Empty", "type": "object"},
    "JobsHealth": {
        "properties": {
            "status": {"enum": ["healthy", "unhealthy", "degraded"], "title": "Status", "type": "string"},
        },
        "required": ["status"],
        "title": "JobsHealth",
        "type": "object",
    },
    "JobsServices": {
        "properties": {"services": {"items": {"type": "string"}, "title": "Services", "type": "array"}},
        "required": ["services"],
        "title": "JobsServices",
        "type": "object",
    },
    "JobsListInput": {
        "properties": {
            "service": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Service"},
            "queue": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Queue"},
            "state": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "State"},
            "limit": {"default": 100, "maximum": 1000, "minimum": 1, "title": "Limit", "type": "integer"},
        },
        "title": "JobsListInput",
        "type": "object",
    },
    "JobsList": {
        "properties": {
            "jobs": {
                "items": {
                    "properties": {
                        "service": {"title": "Service", "type": "string"},
                        "queue": {"title": "Queue", "type": "string"},
                        "jobId": {"title": "Jobid", "type": "string"},
                        "state": {
                            "enum": [
                                "pending",
                                "active",
                                "completed",
                                "retry",
                                "failed",
                                "cancelled",
                                "dead",
                                "expired",
                                "dismissed",
                            ],
                            "title": "State",
                            "type": "string",
                        },
                        "tries": {"default": 0, "title": "Tries", "type": "integer"},
                        "payload": {"default": None, "title": "Payload"},
                        "result": {"default": None, "title": "Result"},
                        "error": {
                            "anyOf": [{"type": "string"}, {"type": "null"}],
                            "default": None,
                            "title": "Error",
                        },
                        "createdAt": {"title": "Createdat", "type": "string"},
                        "updatedAt": {"title": "Updatedat", "type": "string"},
                    },
                    "required": ["service", "queue", "jobId", "state", "createdAt", "updatedAt"],
                    "title": "JobInfo",
                    "type": "object",
                },
                "title": "Jobs",
                "type": "array",
            },
        },
        "required": ["jobs"],
        "title": "JobsList",
        "type": "object",
    },
    "JobRef": {
        "properties": {
            "service": {"title": "Service", "type": "string"},
            "queue": {"title": "Queue", "type": "string"},
            "jobId": {"title": "Jobid", "type": "string"},
        },
        "required": ["service", "queue", "jobId"],
        "title": "JobRef",
        "type": "object",
    },
    "JobOutput": {
        "properties": {
            "job": {
                "properties": {
                    "service": {"title": "Service", "type": "string"},
                    "queue": {"title": "Queue", "type": "string"},
                    "jobId": {"title": "Jobid", "type": "string"},
                    "state": {
                        "enum": [
                            "pending",
                            "active",
                            "completed",
                            "retry",
                            "failed",
                            "cancelled",
                            "dead",
                            "expired",
                            "dismissed",
                        ],
                        "title": "State",
                        "type": "string",
                    },
                    "tries": {"default": 0, "title": "Tries", "type": "integer"},
                    "payload": {"default": None, "title": "Payload"},
                    "result": {"default": None, "title": "Result"},
                    "error": {
                        "anyOf": [{"type": "string"}, {"type": "null"}],
                        "default": None,
                        "title": "Error",
                    },
                    "createdAt": {"title": "Createdat", "type": "string"},
                    "updatedAt": {"title": "Updatedat", "type": "string"},
                },
                "required": ["service", "queue", "jobId", "state", "createdAt", "updatedAt"],
                "title": "JobInfo",
                "type": "object",
            },
        },
        "required": ["job"],
        "title": "JobOutput",
        "type": "object",
    },
}
