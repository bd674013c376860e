"""RPC wire facts shared by callers and handlers (PROTOCOL §6).

:func:`request_headers` builds a request's auth headers (the proof over the exact body sent);
request ids come from :class:`trellis.ids.RequestIds`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from trellis.auth import SessionKey, rpc_proof_digest
from trellis.encoding import b64url_encode
from trellis.ids import RequestIds
from trellis.result import TrellisError

__all__ = [
    "HEADER_IAT",
    "HEADER_PROOF",
    "HEADER_REQUEST_ID",
    "HEADER_SESSION_KEY",
    "HEADER_STATUS",
    "HEADER_TRACEPARENT",
    "STATUS_ERROR",
    "RequestIds",
    "dump_payload",
    "error_reply",
    "request_headers",
    "signed_headers",
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
    """``session-key``, ``proof``, ``iat``, ``request-id`` and, if given, ``traceparent``."""
    signature = key.sign(rpc_proof_digest(key.public_key, subject, body, iat, request_id))
    return signed_headers(key.public_key, signature, iat, request_id, traceparent)


def signed_headers(
    public_key: str, signature: bytes, iat: int, request_id: str, traceparent: str | None
) -> dict[str, str]:
    """The request headers around an already computed proof signature."""
    headers = {
        HEADER_SESSION_KEY: public_key,
        HEADER_PROOF: b64url_encode(signature),
        HEADER_IAT: str(iat),
        HEADER_REQUEST_ID: request_id,
    }
    if traceparent:
        headers[HEADER_TRACEPARENT] = traceparent
    return headers


def dump_payload(value: Any) -> bytes:
    """JSON bytes of a model (by alias) or plain JSON value.

    A model goes through its pydantic-core serializer, which returns the bytes that
    ``model_dump_json`` would decode to text (and we would encode back): half the cost.
    """
    if isinstance(value, BaseModel):
        return value.__pydantic_serializer__.to_json(value, by_alias=True, exclude_none=True)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def error_reply(error: TrellisError) -> tuple[bytes, dict[str, str]]:
    return dump_payload(error.to_wire()), {HEADER_STATUS: STATUS_ERROR}
