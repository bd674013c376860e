"""RPC wire facts shared by callers and handlers (PROTOCOL §6).

:func:`request_headers` builds a request's auth headers (the proof over the exact body sent);
:class:`RequestIds` hands out request ids (ULIDs) without a syscall or a full base32 pass per
call.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

from pydantic import BaseModel

from trellis.auth import SessionKey, rpc_proof_digest
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


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: every 10-bit value as two Crockford base32 characters
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)


class RequestIds:
    """Monotonic ULIDs (the ULID spec's monotonic mode) for one caller's request ids.

    Within one millisecond each id is the previous one plus one, so ids from one generator
    never repeat.  A new millisecond draws fresh randomness: 40 high bits, formatted once,
    and 39 low bits that the increments count up from (they can never carry into the high
    part: that would take 2^39 ids in one millisecond).  Per id only the low 40 bits are
    formatted.  The format is exactly :func:`trellis.ids.ulid`'s.
    """

    __slots__ = ("_low", "_ms", "_pid", "_prefix", "_rng")

    def __init__(self) -> None:
        self._ms = -1
        self._prefix = ""
        self._low = 0
        self._seed()

    def _seed(self) -> None:
        # uniqueness, not secrecy, is what a request id needs: the proof signs it and the
        # replay guard refuses repeats; a CSPRNG-seeded generator avoids a syscall per id
        self._rng = random.Random(os.urandom(32))  # noqa: S311 - ids are not secrets
        self._pid = os.getpid()

    def next(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms != self._ms:
            if os.getpid() != self._pid:  # a forked child must not replay its parent's ids
                self._seed()
            self._ms = ms
            high = self._rng.getrandbits(40)
            pairs = _PAIRS
            # 48 bits of milliseconds, then 40 random bits: ten characters each
            self._prefix = (
                pairs[(ms >> 40) & 1023]
                + pairs[(ms >> 30) & 1023]
                + pairs[(ms >> 20) & 1023]
                + pairs[(ms >> 10) & 1023]
                + pairs[ms & 1023]
                + pairs[high >> 30]
                + pairs[(high >> 20) & 1023]
                + pairs[(high >> 10) & 1023]
                + pairs[high & 1023]
            )
            self._low = self._rng.getrandbits(39)
        else:
            self._low += 1
        r = self._low
        pairs = _PAIRS
        return (
            self._prefix
            + pairs[r >> 30]
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
