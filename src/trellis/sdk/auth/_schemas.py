"""The JSON Schemas of ``trellis.auth@v1``, verbatim from its manifest (generated)."""

# fmt: off
# ruff: noqa: E501, RUF100

from typing import Any

SCHEMAS: dict[str, Any] = {
    "RequestValidateInput": {
        "properties": {
            "sessionKey": {"title": "Sessionkey", "type": "string"},
            "proof": {"title": "Proof", "type": "string"},
            "subject": {"title": "Subject", "type": "string"},
            "payloadHash": {"title": "Payloadhash", "type": "string"},
            "iat": {"title": "Iat", "type": "integer"},
            "requestId": {"title": "Requestid", "type": "string"},
            "capabilities": {
                "anyOf": [{"items": {"type": "string"}, "type": "array"}, {"type": "null"}],
                "default": None,
                "title": "Capabilities",
            },
        },
        "required": ["sessionKey", "proof", "subject", "payloadHash", "iat", "requestId"],
        "title": "RequestValidateInput",
        "type": "object",
    },
    "RequestValidateOutput": {
        "properties": {
            "allowed": {"title": "Allowed", "type": "boolean"},
            "inboxPrefix": {"title": "Inboxprefix", "type": "string"},
            "caller": {
                "anyOf": [
                    {
                        "properties": {
                            "type": {"const": "user", "title": "Type", "type": "string"},
                            "participantKind": {"enum": ["app", "agent"], "title": "Participantkind", "type": "string"},
                            "userId": {"minLength": 1, "title": "Userid", "type": "string"},
                            "identity": {
                                "properties": {
                                    "identityId": {"minLength": 1, "title": "Identityid", "type": "string"},
                                    "provider": {"minLength": 1, "title": "Provider", "type": "string"},
                                    "subject": {"minLength": 1, "title": "Subject", "type": "string"},
                                },
                                "required": ["identityId", "provider", "subject"],
                                "title": "Identity",
                                "type": "object",
                            },
                            "active": {"title": "Active", "type": "boolean"},
                            "name": {"title": "Name", "type": "string"},
                            "email": {"title": "Email", "type": "string"},
                            "image": {
                                "anyOf": [{"type": "string"}, {"type": "null"}],
                                "default": None,
                                "title": "Image",
                            },
                            "capabilities": {"items": {"type": "string"}, "title": "Capabilities", "type": "array"},
                            "lastAuth": {"title": "Lastauth", "type": "string"},
                        },
                        "required": [
                            "type",
                            "participantKind",
                            "userId",
                            "identity",
                            "active",
                            "name",
                            "email",
                            "capabilities",
                            "lastAuth",
                        ],
                        "title": "UserCaller",
                        "type": "object",
                    },
                    {
                        "properties": {
                            "type": {"const": "service", "title": "Type", "type": "string"},
                            "id": {"title": "Id", "type": "string"},
                            "name": {"title": "Name", "type": "string"},
                            "active": {"title": "Active", "type": "boolean"},
                            "capabilities": {"items": {"type": "string"}, "title": "Capabilities", "type": "array"},
                        },
                        "required": ["type", "id", "name", "active", "capabilities"],
                        "title": "ServiceCaller",
                        "type": "object",
                    },
                    {
                        "description": "Upstream's device sessions (activated devices); this runtime has none yet.",
                        "properties": {
                            "type": {"const": "device", "title": "Type", "type": "string"},
                            "deviceId": {"minLength": 1, "title": "Deviceid", "type": "string"},
                            "deviceType": {"minLength": 1, "title": "Devicetype", "type": "string"},
                            "runtimePublicKey": {"minLength": 1, "title": "Runtimepublickey", "type": "string"},
                            "deploymentId": {"minLength": 1, "title": "Deploymentid", "type": "string"},
                            "active": {"title": "Active", "type": "boolean"},
                            "capabilities": {"items": {"type": "string"}, "title": "Capabilities", "type": "array"},
                        },
                        "required": [
                            "type",
                            "deviceId",
                            "deviceType",
                            "runtimePublicKey",
                            "deploymentId",
                            "active",
                            "capabilities",
                        ],
                        "title": "DeviceCaller",
                        "type": "object",
                    },
                ],
                "title": "Caller",
            },
        },
        "required": ["allowed", "inboxPrefix", "caller"],
        "title": "RequestValidateOutput",
        "type": "object",
    },
    "Empty": {"description": "No input.", "properties": {}, "title": "Empty", "type": "object"},
    "SessionMe": {
        "description": "``Auth.Sessions.Me``: exactly one of ``user`` / ``device`` / ``service`` is set; the\nothers are sent as ``null``, as upstream's schema requires them.",
        "properties": {
            "participantKind": {
                "enum": ["app", "agent", "device", "service"],
                "title": "Participantkind",
                "type": "string",
            },
            "user": {
                "anyOf": [
                    {
                        "properties": {
                            "userId": {"minLength": 1, "title": "Userid", "type": "string"},
                            "active": {"title": "Active", "type": "boolean"},
                            "name": {"title": "Name", "type": "string"},
                            "email": {"title": "Email", "type": "string"},
                            "image": {
                                "anyOf": [{"type": "string"}, {"type": "null"}],
                                "default": None,
                                "title": "Image",
                            },
                            "capabilities": {"items": {"type": "string"}, "title": "Capabilities", "type": "array"},
                            "identity": {
                                "properties": {
                                    "identityId": {"minLength": 1, "title": "Identityid", "type": "string"},
                                    "provider": {"minLength": 1, "title": "Provider", "type": "string"},
                                    "subject": {"minLength": 1, "title": "Subject", "type": "string"},
                                },
                                "required": ["identityId", "provider", "subject"],
                                "title": "Identity",
                                "type": "object",
                            },
                            "lastLogin": {
                                "anyOf": [{"type": "string"}, {"type": "null"}],
                                "default": None,
                                "title": "Lastlogin",
                            },
                        },
                        "required": ["userId", "active", "name", "email", "capabilities", "identity"],
                        "title": "AuthenticatedUser",
                        "type": "object",
                    },
                    {"type": "null"},
                ],
            },
            "device": {
                "anyOf": [
                    {
                        "description": "Upstream's device sessions (activated devices); this runtime has none yet.",
                        "properties": {
                            "type": {"const": "device", "title": "Type", "type": "string"},
                            "deviceId": {"minLength": 1, "title": "Deviceid", "type": "string"},
                            "deviceType": {"minLength": 1, "title": "Devicetype", "type": "string"},
                            "runtimePublicKey": {"minLength": 1, "title": "Runtimepublickey", "type": "string"},
                            "deploymentId": {"minLength": 1, "title": "Deploymentid", "type": "string"},
                            "active": {"title": "Active", "type": "boolean"},
                            "capabilities": {"items": {"type": "string"}, "title": "Capabilities", "type": "array"},
                        },
                        "required": [
                            "type",
                            "deviceId",
                            "deviceType",
                            "runtimePublicKey",
                            "deploymentId",
                            "active",
                            "capabilities",
                        ],
                        "title": "DeviceCaller",
                        "type": "object",
                    },
                    {"type": "null"},
                ],
            },
            "service": {
                "anyOf": [
                    {
                        "properties": {
                            "type": {"const": "service", "title": "Type", "type": "string"},
                            "id": {"title": "Id", "type": "string"},
                            "name": {"title": "Name", "type": "string"},
                            "active": {"title": "Active", "type": "boolean"},
                            "capabilities": {"items": {"type": "string"}, "title": "Capabilities", "type": "array"},
                        },
                        "required": ["type", "id", "name", "active", "capabilities"],
                        "title": "ServiceCaller",
                        "type": "object",
                    },
                    {"type": "null"},
                ],
            },
        },
        "required": ["participantKind", "user", "device", "service"],
        "title": "SessionMe",
        "type": "object",
    },
    "Ack": {
        "properties": {"success": {"default": True, "title": "Success", "type": "boolean"}},
        "title": "Ack",
        "type": "object",
    },
    "SessionList": {
        "properties": {
            "sessions": {
                "items": {
                    "properties": {
                        "sessionKey": {"title": "Sessionkey", "type": "string"},
                        "type": {"enum": ["user", "service", "device"], "title": "Type", "type": "string"},
                        "id": {"title": "Id", "type": "string"},
                        "contractId": {
                            "anyOf": [{"type": "string"}, {"type": "null"}],
                            "default": None,
                            "title": "Contractid",
                        },
                        "contractDigest": {
                            "anyOf": [{"type": "string"}, {"type": "null"}],
                            "default": None,
                            "title": "Contractdigest",
                        },
                        "capabilities": {"items": {"type": "string"}, "title": "Capabilities", "type": "array"},
                        "createdAt": {
                            "anyOf": [{"type": "string"}, {"type": "null"}],
                            "default": None,
                            "title": "Createdat",
                        },
                        "lastAuth": {
                            "anyOf": [{"type": "string"}, {"type": "null"}],
                            "default": None,
                            "title": "Lastauth",
                        },
                    },
                    "required": ["sessionKey", "type", "id"],
                    "title": "SessionInfo",
                    "type": "object",
                },
                "title": "Sessions",
                "type": "array",
            },
        },
        "required": ["sessions"],
        "title": "SessionList",
        "type": "object",
    },
    "SessionRevokeInput": {
        "properties": {"sessionKey": {"title": "Sessionkey", "type": "string"}},
        "required": ["sessionKey"],
        "title": "SessionRevokeInput",
        "type": "object",
    },
    "ConnectionsListInput": {
        "properties": {
            "sessionKey": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "default": None,
                "title": "Sessionkey",
            },
        },
        "title": "ConnectionsListInput",
        "type": "object",
    },
    "ConnectionList": {
        "properties": {
            "connections": {
                "items": {
                    "properties": {
                        "sessionKey": {"title": "Sessionkey", "type": "string"},
                        "userNkey": {"title": "Usernkey", "type": "string"},
                        "serverId": {"title": "Serverid", "type": "string"},
                        "clientId": {"title": "Clientid", "type": "integer"},
                        "connectedAt": {"title": "Connectedat", "type": "string"},
                        "kind": {
                            "default": "service",
                            "enum": ["user", "service", "device"],
                            "title": "Kind",
                            "type": "string",
                        },
                        "id": {"default": "", "title": "Id", "type": "string"},
                    },
                    "required": ["sessionKey", "userNkey", "serverId", "clientId", "connectedAt"],
                    "title": "ConnectionInfo",
                    "type": "object",
                },
                "title": "Connections",
                "type": "array",
            },
        },
        "required": ["connections"],
        "title": "ConnectionList",
        "type": "object",
    },
    "ConnectionKickInput": {
        "properties": {"userNkey": {"title": "Usernkey", "type": "string"}},
        "required": ["userNkey"],
        "title": "ConnectionKickInput",
        "type": "object",
    },
    "UserList": {
        "properties": {
            "users": {
                "items": {
                    "description": "A registered participant session: a key, the contract it connects with, its grants.",
                    "properties": {
                        "id": {"title": "Id", "type": "string"},
                        "name": {
                            "anyOf": [{"type": "string"}, {"type": "null"}],
                            "default": None,
                            "title": "Name",
                        },
                        "sessionKey": {"title": "Sessionkey", "type": "string"},
                        "contractId": {"title": "Contractid", "type": "string"},
                        "contractDigest": {"title": "Contractdigest", "type": "string"},
                        "active": {"default": True, "title": "Active", "type": "boolean"},
                        "capabilities": {"items": {"type": "string"}, "title": "Capabilities", "type": "array"},
                    },
                    "required": ["id", "sessionKey", "contractId", "contractDigest"],
                    "title": "UserInfo",
                    "type": "object",
                },
                "title": "Users",
                "type": "array",
            },
        },
        "required": ["users"],
        "title": "UserList",
        "type": "object",
    },
    "UserGetInput": {
        "properties": {"id": {"title": "Id", "type": "string"}},
        "required": ["id"],
        "title": "UserGetInput",
        "type": "object",
    },
    "UserInfo": {
        "description": "A registered participant session: a key, the contract it connects with, its grants.",
        "properties": {
            "id": {"title": "Id", "type": "string"},
            "name": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Name"},
            "sessionKey": {"title": "Sessionkey", "type": "string"},
            "contractId": {"title": "Contractid", "type": "string"},
            "contractDigest": {"title": "Contractdigest", "type": "string"},
            "active": {"default": True, "title": "Active", "type": "boolean"},
            "capabilities": {"items": {"type": "string"}, "title": "Capabilities", "type": "array"},
        },
        "required": ["id", "sessionKey", "contractId", "contractDigest"],
        "title": "UserInfo",
        "type": "object",
    },
    "DeploymentErrorData": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "type": {"const": "DeploymentError", "type": "string"},
            "message": {"type": "string"},
            "reason": {"title": "Reason", "type": "string"},
            "problems": {"items": {"type": "string"}, "title": "Problems", "type": "array"},
            "context": {"type": "object"},
            "traceId": {"type": "string"},
        },
        "required": ["id", "type", "message", "reason"],
    },
    "UserCreateInput": {
        "properties": {
            "id": {"pattern": "^[a-z][a-z0-9._-]{0,62}$", "title": "Id", "type": "string"},
            "name": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Name"},
            "sessionKey": {"pattern": "^[A-Za-z0-9_-]{43}$", "title": "Sessionkey", "type": "string"},
            "contract": {"additionalProperties": True, "title": "Contract", "type": "object"},
            "capabilities": {"items": {"type": "string"}, "title": "Capabilities", "type": "array"},
        },
        "required": ["id", "sessionKey", "contract"],
        "title": "UserCreateInput",
        "type": "object",
    },
    "UserUpdateInput": {
        "properties": {
            "id": {"title": "Id", "type": "string"},
            "active": {"anyOf": [{"type": "boolean"}, {"type": "null"}], "default": None, "title": "Active"},
            "capabilities": {
                "anyOf": [{"items": {"type": "string"}, "type": "array"}, {"type": "null"}],
                "default": None,
                "title": "Capabilities",
            },
            "grant": {"items": {"type": "string"}, "title": "Grant", "type": "array"},
            "revoke": {"items": {"type": "string"}, "title": "Revoke", "type": "array"},
        },
        "required": ["id"],
        "title": "UserUpdateInput",
        "type": "object",
    },
    "DeploymentCreateInput": {
        "properties": {
            "name": {"title": "Name", "type": "string"},
            "contract": {"additionalProperties": True, "title": "Contract", "type": "object"},
            "publicKey": {"title": "Publickey", "type": "string"},
        },
        "required": ["name", "contract", "publicKey"],
        "title": "DeploymentCreateInput",
        "type": "object",
    },
    "DeploymentOutput": {
        "properties": {
            "deployment": {
                "properties": {
                    "name": {"title": "Name", "type": "string"},
                    "contractId": {"title": "Contractid", "type": "string"},
                    "contractDigest": {"title": "Contractdigest", "type": "string"},
                    "disabled": {"default": False, "title": "Disabled", "type": "boolean"},
                    "instanceKeys": {"items": {"type": "string"}, "title": "Instancekeys", "type": "array"},
                    "capabilities": {"items": {"type": "string"}, "title": "Capabilities", "type": "array"},
                    "createdAt": {"default": "", "title": "Createdat", "type": "string"},
                    "updatedAt": {"default": "", "title": "Updatedat", "type": "string"},
                },
                "required": ["name", "contractId", "contractDigest"],
                "title": "Deployment",
                "type": "object",
            },
            "health": {
                "items": {
                    "description": "The latest ``Health.Heartbeat`` of one service instance.",
                    "properties": {
                        "name": {"title": "Name", "type": "string"},
                        "instanceId": {"title": "Instanceid", "type": "string"},
                        "status": {
                            "enum": ["healthy", "unhealthy", "degraded"],
                            "title": "Status",
                            "type": "string",
                        },
                        "seenAt": {"title": "Seenat", "type": "string"},
                        "startedAt": {"title": "Startedat", "type": "string"},
                        "contractDigest": {"title": "Contractdigest", "type": "string"},
                        "summary": {
                            "anyOf": [{"type": "string"}, {"type": "null"}],
                            "default": None,
                            "title": "Summary",
                        },
                    },
                    "required": ["name", "instanceId", "status", "seenAt", "startedAt", "contractDigest"],
                    "title": "InstanceHealth",
                    "type": "object",
                },
                "title": "Health",
                "type": "array",
            },
        },
        "required": ["deployment"],
        "title": "DeploymentOutput",
        "type": "object",
    },
    "DeploymentList": {
        "properties": {
            "deployments": {
                "items": {
                    "properties": {
                        "name": {"title": "Name", "type": "string"},
                        "contractId": {"title": "Contractid", "type": "string"},
                        "contractDigest": {"title": "Contractdigest", "type": "string"},
                        "disabled": {"default": False, "title": "Disabled", "type": "boolean"},
                        "instanceKeys": {"items": {"type": "string"}, "title": "Instancekeys", "type": "array"},
                        "capabilities": {"items": {"type": "string"}, "title": "Capabilities", "type": "array"},
                        "createdAt": {"default": "", "title": "Createdat", "type": "string"},
                        "updatedAt": {"default": "", "title": "Updatedat", "type": "string"},
                    },
                    "required": ["name", "contractId", "contractDigest"],
                    "title": "Deployment",
                    "type": "object",
                },
                "title": "Deployments",
                "type": "array",
            },
        },
        "required": ["deployments"],
        "title": "DeploymentList",
        "type": "object",
    },
    "DeploymentNameInput": {
        "properties": {"name": {"title": "Name", "type": "string"}},
        "required": ["name"],
        "title": "DeploymentNameInput",
        "type": "object",
    },
    "InstanceInput": {
        "properties": {
            "name": {"title": "Name", "type": "string"},
            "instanceKey": {"title": "Instancekey", "type": "string"},
        },
        "required": ["name", "instanceKey"],
        "title": "InstanceInput",
        "type": "object",
    },
    "InstanceInfo": {
        "properties": {
            "instanceId": {"title": "Instanceid", "type": "string"},
            "name": {"title": "Name", "type": "string"},
            "instanceKey": {"title": "Instancekey", "type": "string"},
            "disabled": {"default": False, "title": "Disabled", "type": "boolean"},
        },
        "required": ["instanceId", "name", "instanceKey"],
        "title": "InstanceInfo",
        "type": "object",
    },
    "InstanceList": {
        "properties": {
            "instances": {
                "items": {
                    "properties": {
                        "instanceId": {"title": "Instanceid", "type": "string"},
                        "name": {"title": "Name", "type": "string"},
                        "instanceKey": {"title": "Instancekey", "type": "string"},
                        "disabled": {"default": False, "title": "Disabled", "type": "boolean"},
                    },
                    "required": ["instanceId", "name", "instanceKey"],
                    "title": "InstanceInfo",
                    "type": "object",
                },
                "title": "Instances",
                "type": "array",
            },
        },
        "required": ["instances"],
        "title": "InstanceList",
        "type": "object",
    },
    "ConnectionEvent": {
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
            "origin": {"title": "Origin", "type": "string"},
            "id": {"title": "Id", "type": "string"},
            "sessionKey": {"title": "Sessionkey", "type": "string"},
            "userNkey": {"title": "Usernkey", "type": "string"},
        },
        "required": ["header", "origin", "id", "sessionKey", "userNkey"],
        "title": "ConnectionEvent",
        "type": "object",
    },
    "ConnectionKickedEvent": {
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
            "origin": {"title": "Origin", "type": "string"},
            "id": {"title": "Id", "type": "string"},
            "userNkey": {"title": "Usernkey", "type": "string"},
            "kickedBy": {"title": "Kickedby", "type": "string"},
        },
        "required": ["header", "origin", "id", "userNkey", "kickedBy"],
        "title": "ConnectionKickedEvent",
        "type": "object",
    },
    "SessionRevokedEvent": {
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
            "origin": {"title": "Origin", "type": "string"},
            "id": {"title": "Id", "type": "string"},
            "sessionKey": {"title": "Sessionkey", "type": "string"},
            "revokedBy": {"title": "Revokedby", "type": "string"},
        },
        "required": ["header", "origin", "id", "sessionKey", "revokedBy"],
        "title": "SessionRevokedEvent",
        "type": "object",
    },
}
