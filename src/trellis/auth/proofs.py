"""Connect tokens and RPC request proofs (PROTOCOL §5, §6)."""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from pydantic import ValidationError as PydanticValidationError

from trellis.auth.keys import (
    DOMAIN_HEARTBEAT,
    DOMAIN_NATS_CONNECT,
    DOMAIN_NATS_NONCE,
    SessionKey,
    verify_domain_signature,
    verify_signature,
)
from trellis.canonical import canonical_json
from trellis.encoding import b64url_encode, sha256

__all__ = [
    "IAT_SKEW_SECONDS",
    "ConnectToken",
    "ConnectTokenError",
    "connect_token",
    "heartbeat_proof",
    "iat_in_window",
    "parse_connect_token",
    "proof_input",
    "proof_input_for_hash",
    "rpc_proof",
    "rpc_proof_digest",
    "verify_connect_token",
    "verify_heartbeat_proof",
    "verify_rpc_proof",
]

#: both the connect token and RPC proofs are refused when ``|now - iat|`` exceeds this
IAT_SKEW_SECONDS = 30

_B64_43 = r"^[A-Za-z0-9_-]{43}$"
_B64_86 = r"^[A-Za-z0-9_-]{86}$"


class ConnectTokenError(ValueError):
    """A connect token is missing or malformed; ``reason`` is the callout reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class ConnectToken(BaseModel):
    """The ``auth_token`` a participant presents when connecting through the sentinel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Annotated[StrictInt, Field(ge=1, le=1)]
    session_key: Annotated[str, Field(alias="sessionKey", pattern=_B64_43)]
    contract_digest: Annotated[
        str, Field(alias="contractDigest", pattern=r"^[A-Za-z0-9_-]+$", max_length=128)
    ]
    iat: StrictInt
    sig: Annotated[str, Field(pattern=_B64_86)]
    #: (ours, optional; upstream's callout ignores it) the session key's signature over the
    #: nonce nats-server sent the connection presenting this token
    nonce_sig: Annotated[str | None, Field(alias="nonceSig", pattern=_B64_86)] = None

    def signature_valid(self) -> bool:
        return verify_domain_signature(
            self.session_key, DOMAIN_NATS_CONNECT, f"{self.iat}:{self.contract_digest}", self.sig
        )

    def bound_to(self, nonce: str | None) -> bool:
        """Whether ``nonceSig`` signs ``nonce``: the token was made for this connection."""
        if self.nonce_sig is None or not nonce:
            return False
        return verify_domain_signature(self.session_key, DOMAIN_NATS_NONCE, nonce, self.nonce_sig)


def connect_token(
    key: SessionKey, contract_digest: str, iat: int, *, nonce: str | None = None
) -> str:
    """The compact connect-token JSON (sorted keys, as upstream's vectors show); with the
    connection's ``nonce``, also its ``nonceSig`` (ours)."""
    sig = key.sign_domain(DOMAIN_NATS_CONNECT, f"{iat}:{contract_digest}")
    token: dict[str, object] = {
        "v": 1,
        "sessionKey": key.public_key,
        "contractDigest": contract_digest,
        "iat": iat,
        "sig": sig,
    }
    if nonce:
        token["nonceSig"] = key.sign_domain(DOMAIN_NATS_NONCE, nonce)
    return canonical_json(token)


def parse_connect_token(raw: str | None) -> ConnectToken:
    """Parse an untrusted token; raises ``ConnectTokenError`` with the callout reason code."""
    if raw is None or raw == "":
        raise ConnectTokenError("auth_token_required", "no auth token was presented")
    if len(raw) > 4096:
        raise ConnectTokenError("invalid_auth_token", "auth token is too large")
    try:
        data = json.loads(raw)
        return ConnectToken.model_validate(data)
    # RecursionError: json.loads on nesting deeper than the interpreter's limit
    except (ValueError, RecursionError, PydanticValidationError):
        raise ConnectTokenError("invalid_auth_token", "auth token is not valid JSON") from None


def iat_in_window(iat: int, now: float) -> bool:
    """Compared without subtracting: ``now - iat`` overflows a float for a huge ``iat``,
    which a connect token or bootstrap body may carry (int and float compare exactly)."""
    return now - IAT_SKEW_SECONDS <= iat <= now + IAT_SKEW_SECONDS


def verify_connect_token(token: ConnectToken, now: float) -> str | None:
    """Return ``None`` when the token is fresh and correctly signed, else its reason code."""
    if not iat_in_window(token.iat, now):
        return "iat_out_of_range"
    if not token.signature_valid():
        return "invalid_signature"
    return None


_u32 = struct.Struct(">I").pack


def proof_input(session_key: str, subject: str, payload: bytes, iat: int, request_id: str) -> bytes:
    """``L(sessionKey) + L(subject) + L(SHA256(body)) + L(str(iat)) + L(requestId)``."""
    return proof_input_for_hash(session_key, subject, sha256(payload), iat, request_id)


def proof_input_for_hash(
    session_key: str, subject: str, payload_hash: bytes, iat: int, request_id: str
) -> bytes:
    """:func:`proof_input` when only the body's SHA-256 is at hand (``Auth.Requests.Validate``)."""
    key = session_key.encode()
    subj = subject.encode()
    iat_text = str(iat).encode()
    rid = request_id.encode()
    return b"".join(
        (
            _u32(len(key)),
            key,
            _u32(len(subj)),
            subj,
            _u32(len(payload_hash)),
            payload_hash,
            _u32(len(iat_text)),
            iat_text,
            _u32(len(rid)),
            rid,
        )
    )


def rpc_proof_digest(
    session_key: str, subject: str, payload: bytes, iat: int, request_id: str
) -> bytes:
    """What a request proof signs: SHA-256 of :func:`proof_input` (hashlib direct: hot path)."""
    body_hash = hashlib.sha256(payload).digest()
    return hashlib.sha256(
        proof_input_for_hash(session_key, subject, body_hash, iat, request_id)
    ).digest()


def rpc_proof(key: SessionKey, subject: str, payload: bytes, iat: int, request_id: str) -> str:
    """Sign :func:`rpc_proof_digest` with the session key."""
    return b64url_encode(
        key.sign(rpc_proof_digest(key.public_key, subject, payload, iat, request_id))
    )


def verify_rpc_proof(
    session_key: str, proof: str, subject: str, payload: bytes, iat: int, request_id: str
) -> bool:
    """Check a request proof over the body actually received (never a supplied hash)."""
    if not isinstance(proof, str) or not isinstance(request_id, str):
        return False
    digest = rpc_proof_digest(session_key, subject, payload, iat, request_id)
    return verify_signature(session_key, digest, proof)


def heartbeat_proof(key: SessionKey, body: bytes) -> str:
    """(ours) The instance's signature over a heartbeat's exact body:
    ``sign(seed, SHA256("health-heartbeat:" + base64url(SHA256(body))))``."""
    return key.sign_domain(DOMAIN_HEARTBEAT, b64url_encode(sha256(body)))


def verify_heartbeat_proof(session_key: str, body: bytes, proof: str) -> bool:
    """Whether ``proof`` is ``session_key``'s :func:`heartbeat_proof` of the body received."""
    return verify_domain_signature(
        session_key, DOMAIN_HEARTBEAT, b64url_encode(sha256(body)), proof
    )
