"""RPC wire facts shared by callers and handlers (PROTOCOL §6).

:func:`request_headers` is the reference construction of a request's auth headers;
:class:`RequestSigner` produces the same headers on the caller's hot path with the per-subject
part of the proof input computed once, and :class:`RequestIds` hands out request ids (ULIDs)
without a syscall or a base32 pass per call.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from typing import Any

from pydantic import BaseModel

from trellis.auth import SessionKey, rpc_proof
from trellis.encoding import b64url_encode
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
    "RequestSigner",
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


def _length_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


#: ``L(SHA256(body))``: the digest is always 32 bytes
_BODY_HASH_LENGTH = (32).to_bytes(4, "big")


class RequestSigner:
    """:func:`request_headers` for one session key, with ``L(sessionKey) + L(subject)`` cached.

    The proof is ``sign(SHA256(L(sessionKey) + L(subject) + L(SHA256(body)) + L(str(iat)) +
    L(requestId)))`` exactly as :func:`trellis.auth.rpc_proof` computes it; only the constant
    leading part is remembered per subject.
    """

    __slots__ = ("_key", "_prefixes", "_public")

    _MAX_SUBJECTS = 1024

    def __init__(self, key: SessionKey) -> None:
        self._key = key
        self._public = key.public_key
        self._prefixes: dict[str, bytes] = {}

    def headers(
        self, subject: str, body: bytes, iat: int, request_id: str, traceparent: str | None
    ) -> dict[str, str]:
        prefix = self._prefixes.get(subject)
        if prefix is None:
            prefix = _length_prefixed(self._public.encode()) + _length_prefixed(subject.encode())
            if len(self._prefixes) >= self._MAX_SUBJECTS:
                self._prefixes.clear()
            self._prefixes[subject] = prefix
        iat_text = str(iat)
        digest = hashlib.sha256(
            prefix
            + _BODY_HASH_LENGTH
            + hashlib.sha256(body).digest()
            + _length_prefixed(iat_text.encode())
            + _length_prefixed(request_id.encode())
        ).digest()
        headers = {
            HEADER_SESSION_KEY: self._public,
            HEADER_PROOF: b64url_encode(self._key.sign(digest)),
            HEADER_IAT: iat_text,
            HEADER_REQUEST_ID: request_id,
        }
        if traceparent:
            headers[HEADER_TRACEPARENT] = traceparent
        return headers


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: every 10-bit value as two Crockford base32 characters
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
_RANDOM_BITS = 80


class RequestIds:
    """Monotonic ULIDs (the ULID spec's monotonic mode) for one caller's request ids.

    Within one millisecond each id is the previous one plus one, so ids from one generator
    never repeat; a new millisecond starts from fresh randomness (79 bits, so the increments
    can never overflow the 80-bit field).  The format is exactly :func:`trellis.ids.ulid`'s.
    """

    __slots__ = ("_ms", "_random", "_rng", "_time")

    def __init__(self) -> None:
        self._ms = -1
        self._time = ""
        self._random = 0
        # uniqueness, not secrecy, is what a request id needs: the proof signs it and the
        # replay guard refuses repeats; a CSPRNG-seeded generator avoids a syscall per id
        self._rng = random.Random(os.urandom(32))  # noqa: S311 - ids are not secrets

    def next(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms != self._ms:
            self._ms = ms
            self._time = "".join(_CROCKFORD[(ms >> shift) & 31] for shift in range(45, -1, -5))
            self._random = self._rng.getrandbits(_RANDOM_BITS - 1)
        else:
            self._random += 1
        r = self._random
        pairs = _PAIRS
        return (
            self._time
            + pairs[r >> 70]
            + pairs[(r >> 60) & 1023]
            + pairs[(r >> 50) & 1023]
            + pairs[(r >> 40) & 1023]
            + pairs[(r >> 30) & 1023]
            + pairs[(r >> 20) & 1023]
            + pairs[(r >> 10) & 1023]
            + pairs[r & 1023]
        )


def dump_payload(value: Any) -> bytes:
    """JSON bytes of a model (by alias) or plain JSON value."""
    if isinstance(value, BaseModel):
        return value.model_dump_json(by_alias=True, exclude_none=True).encode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def error_reply(error: TrellisError) -> tuple[bytes, dict[str, str]]:
    return dump_payload(error.to_wire()), {HEADER_STATUS: STATUS_ERROR}
