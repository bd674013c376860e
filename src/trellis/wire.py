"""RPC wire facts shared by callers and handlers (PROTOCOL §6)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from trellis.auth import SessionKey, rpc_proof
from trellis.result import TrellisError

__all__ = [
    "HEADER_IAT",
    "HEADER_PROOF",
    "HEADER_REQUEST_ID",
    "HEADER_SESSION_KEY",
    "HEADER_STATUS",
    "HEADER_TRACEPARENT",
    "STATUS_ERROR",
    "dump_payload",
    "error_reply",
    "request_headers",
]

HEADER_SESSION_KEY = "session-key"
HEADER_PROOF = "proof"
HEADER_IAT = "iat"
HEADER_REQUEST_ID = "request-id"
HEADER_TRACEPARENT = "traceparent"
HEADER_STATUS = "status"
STATUS_ERROR = "error"


def request_headers(
    key: SessionKey, subject: str, body: bytes, iat: int, request_id: str, traceparent: str | None
) -> dict[str, str]:
    headers = {
        HEADER_SESSION_KEY: key.public_key,
        HEADER_PROOF: rpc_proof(key, subject, body, iat, request_id),
        HEADER_IAT: str(iat),
        HEADER_REQUEST_ID: request_id,
    }
    if traceparent:
        headers[HEADER_TRACEPARENT] = traceparent
    return headers


def dump_payload(value: Any) -> bytes:
    """JSON bytes of a model (by alias) or plain JSON value."""
    if isinstance(value, BaseModel):
        return value.model_dump_json(by_alias=True, exclude_none=True).encode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def error_reply(error: TrellisError) -> tuple[bytes, dict[str, str]]:
    return dump_payload(error.to_wire()), {HEADER_STATUS: STATUS_ERROR}
