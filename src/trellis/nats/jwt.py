"""NATS JWTs (v2): encode, decode and the operator, account and user kinds (PROTOCOL §1, §5).

The format is the one nats-server and the Go ``nats-io/jwt`` v2 library read: header
``{"typ":"JWT","alg":"ed25519-nkey"}``, unpadded base64url header and claims, and an
Ed25519 signature by the issuer nkey over ``header.payload``. The ``nkeys`` package has no
JWT support, so the format is written here. Claims keep their insertion order, so the same
inputs always give the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from trellis.encoding import b64url_decode, b64url_encode
from trellis.nats.nkey import (
    SIGNING_ROLES,
    KeyRole,
    NKeyError,
    NKeyPair,
    decode_public_key,
    verify_signature,
)

__all__ = [
    "AuthCalloutConfig",
    "DecodedJwt",
    "JwtError",
    "SubjectPermission",
    "UserLimits",
    "UserPermissions",
    "decode_jwt",
    "encode_account_jwt",
    "encode_jwt",
    "encode_operator_jwt",
    "encode_user_jwt",
    "require_key",
]

JWT_ALGORITHM: Final = "ed25519-nkey"
JWT_VERSION: Final = 2
NO_LIMIT: Final = -1

#: Tokens larger than this are refused before any parsing (a NATS JWT is a few KiB).
MAX_JWT_BYTES: Final = 1 << 20

_HEADER: Final = {"typ": "JWT", "alg": JWT_ALGORITHM}


class JwtError(ValueError):
    """A NATS JWT is malformed, badly signed, expired or of the wrong kind."""


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_jwt(claims: Mapping[str, Any], signer: NKeyPair, *, issued_at: int | None = None) -> str:
    """Sign ``claims`` as a NATS JWT: fills ``iss``, ``iat`` (unless given) and ``jti``.

    ``jti`` is base32 (no padding) of SHA-512/256 over the claims without ``jti``, as the
    Go library computes it. The result is unique per claims set.
    """
    body: dict[str, Any] = {k: v for k, v in claims.items() if k != "jti"}
    body["iss"] = signer.public_key
    if issued_at is not None:
        body["iat"] = issued_at
    body.setdefault("iat", int(time.time()))
    digest = hashlib.new("sha512_256", _json(body)).digest()
    body["jti"] = base64.b32encode(digest).decode("ascii").rstrip("=")
    signing_input = f"{b64url_encode(_json(_HEADER))}.{b64url_encode(_json(body))}"
    signature = signer.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}"


@dataclass(frozen=True)
class DecodedJwt:
    """A verified NATS JWT."""

    claims: dict[str, Any]
    token: str = field(repr=False)

    @property
    def issuer(self) -> str:
        value: str = self.claims["iss"]
        return value

    @property
    def subject(self) -> str | None:
        return opt_str(self.claims.get("sub"))

    @property
    def audience(self) -> str | None:
        return opt_str(self.claims.get("aud"))

    @property
    def nats(self) -> dict[str, Any]:
        value = self.claims.get("nats")
        return value if isinstance(value, dict) else {}


def opt_str(value: object) -> str | None:
    """``value`` if it is a string, else ``None`` (reading untrusted claims)."""
    return value if isinstance(value, str) else None


def _decode_part(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(part))
    # RecursionError: nesting deeper than the interpreter's limit (read before the signature)
    except (ValueError, RecursionError) as exc:
        raise JwtError(f"JWT {what} is not base64url JSON") from exc
    if not isinstance(value, dict):
        raise JwtError(f"JWT {what} is not a JSON object")
    return value


def decode_jwt(
    token: str,
    *,
    expected_type: str | None = None,
    issuer_roles: Iterable[KeyRole] | None = None,
    now: float | None = None,
    leeway: int = 5,
) -> DecodedJwt:
    """Decode a NATS JWT and verify its signature against its own ``iss``.

    Checks header ``typ``/``alg``, the signature (libsodium, constant time), ``exp``/``nbf``
    (with ``leeway`` seconds) and, when given, the ``nats.type`` claim and issuer role.
    Raises :class:`JwtError` on anything malformed.
    """
    if not isinstance(token, str):
        raise JwtError("JWT must be a string")
    if len(token) > MAX_JWT_BYTES:
        raise JwtError("JWT is too large")
    token = token.strip()
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("JWT must have three dot-separated parts")
    header = _decode_part(parts[0], "header")
    typ, alg = header.get("typ"), header.get("alg")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        raise JwtError("JWT header typ is not JWT")
    if alg != JWT_ALGORITHM:
        raise JwtError(f"JWT algorithm must be {JWT_ALGORITHM}")
    claims = _decode_part(parts[1], "claims")
    try:
        signature = b64url_decode(parts[2])
    except ValueError as exc:
        raise JwtError("JWT signature is not base64url") from exc
    if len(signature) != 64:
        raise JwtError("JWT signature has the wrong length")
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise JwtError("JWT has no issuer")
    roles = tuple(issuer_roles) if issuer_roles is not None else tuple(SIGNING_ROLES)
    try:
        decode_public_key(issuer, *roles)
    except NKeyError as exc:
        raise JwtError(f"JWT issuer is not a valid public nkey: {exc}") from exc
    if not verify_signature(issuer, f"{parts[0]}.{parts[1]}".encode("ascii"), signature):
        raise JwtError("JWT signature does not verify")
    nats_claims = claims.get("nats")
    if nats_claims is not None and not isinstance(nats_claims, dict):
        raise JwtError("JWT nats claims are not an object")
    if expected_type is not None:
        actual = nats_claims.get("type") if isinstance(nats_claims, dict) else None
        if actual != expected_type:
            raise JwtError(f"JWT type is {actual!r}, expected {expected_type!r}")
    current = time.time() if now is None else now
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise JwtError(f"JWT {name} must be an integer")
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if isinstance(exp, int) and exp != 0 and current > exp + leeway:
        raise JwtError("JWT has expired")
    if isinstance(nbf, int) and nbf != 0 and current + leeway < nbf:
        raise JwtError("JWT is not valid yet")
    return DecodedJwt(claims=claims, token=token)


def require_key(key: str, *roles: KeyRole) -> None:
    """Refuse (with :class:`JwtError`) a claim key that is not a public nkey of ``roles``."""
    try:
        decode_public_key(key, *roles)
    except NKeyError as exc:
        raise JwtError(str(exc)) from exc


def _require_signer(signer: NKeyPair, role: KeyRole, what: str) -> None:
    if signer.role is not role:
        raise JwtError(f"{what} must be signed by an {role.name.lower()} (signing) key")


# --------------------------------------------------------------------------- operator, account


@dataclass(frozen=True)
class AuthCalloutConfig:
    """The ``authorization`` block of an account running the auth callout."""

    auth_users: tuple[str, ...]
    allowed_accounts: tuple[str, ...]
    xkey: str | None = None

    def to_json(self) -> dict[str, Any]:
        for key in self.auth_users:
            require_key(key, KeyRole.USER)
        for key in self.allowed_accounts:
            require_key(key, KeyRole.ACCOUNT)
        out: dict[str, Any] = {
            "auth_users": list(self.auth_users),
            "allowed_accounts": list(self.allowed_accounts),
        }
        if self.xkey is not None:
            require_key(self.xkey, KeyRole.CURVE)
            out["xkey"] = self.xkey
        return out


def _signing_keys(keys: Iterable[str], role: KeyRole) -> list[str]:
    listed = list(keys)
    for key in listed:
        require_key(key, role)
    return listed


def encode_operator_jwt(
    operator: NKeyPair,
    *,
    name: str,
    system_account: str | None = None,
    signing_keys: Iterable[str] = (),
) -> str:
    """The self-signed operator JWT."""
    _require_signer(operator, KeyRole.OPERATOR, "operator JWT")
    nats: dict[str, Any] = {"type": "operator", "version": JWT_VERSION}
    keys = _signing_keys(signing_keys, KeyRole.OPERATOR)
    if keys:
        nats["signing_keys"] = keys
    if system_account is not None:
        require_key(system_account, KeyRole.ACCOUNT)
        nats["system_account"] = system_account
    return encode_jwt({"name": name, "sub": operator.public_key, "nats": nats}, operator)


def encode_account_jwt(
    operator: NKeyPair,
    account_public_key: str,
    *,
    name: str,
    signing_keys: Iterable[str] = (),
    jetstream: bool = True,
    authorization: AuthCalloutConfig | None = None,
    max_payload: int = NO_LIMIT,
    max_subscriptions: int = NO_LIMIT,
) -> str:
    """An account JWT signed by the operator.

    ``jetstream=False`` omits every JetStream limit, which disables JetStream for the
    account; the system account must be built that way or nats-server refuses to start.
    ``max_payload``/``max_subscriptions`` bound every connection of the account: unlike
    the same limits in a user JWT, nats-server enforces these for auth-callout users.
    """
    _require_signer(operator, KeyRole.OPERATOR, "account JWT")
    require_key(account_public_key, KeyRole.ACCOUNT)
    limits: dict[str, Any] = {
        "subs": max_subscriptions,
        "data": NO_LIMIT,
        "payload": max_payload,
        "imports": NO_LIMIT,
        "exports": NO_LIMIT,
        "wildcards": True,
        "conn": NO_LIMIT,
        "leaf": NO_LIMIT,
    }
    if jetstream:
        for key in ("mem_storage", "disk_storage", "streams", "consumer"):
            limits[key] = NO_LIMIT
    nats: dict[str, Any] = {
        "limits": limits,
        "default_permissions": {"pub": {}, "sub": {}},
        "type": "account",
        "version": JWT_VERSION,
    }
    keys = _signing_keys(signing_keys, KeyRole.ACCOUNT)
    if keys:
        nats["signing_keys"] = keys
    if authorization is not None:
        nats["authorization"] = authorization.to_json()
    return encode_jwt({"name": name, "sub": account_public_key, "nats": nats}, operator)


# --------------------------------------------------------------------------- user


@dataclass(frozen=True)
class SubjectPermission:
    """``allow``/``deny`` subject lists (empty lists are omitted from the JWT)."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if self.allow:
            out["allow"] = list(self.allow)
        if self.deny:
            out["deny"] = list(self.deny)
        return out


@dataclass(frozen=True)
class UserPermissions:
    """NATS user permissions: ``pub``, ``sub`` and the optional response permission."""

    pub: SubjectPermission = SubjectPermission()
    sub: SubjectPermission = SubjectPermission()
    resp_max: int | None = None
    resp_ttl_ns: int = 0

    @classmethod
    def allow_all(cls) -> UserPermissions:
        return cls(pub=SubjectPermission(allow=(">",)), sub=SubjectPermission(allow=(">",)))

    @classmethod
    def deny_all(cls) -> UserPermissions:
        return cls(pub=SubjectPermission(deny=(">",)), sub=SubjectPermission(deny=(">",)))


@dataclass(frozen=True)
class UserLimits:
    """Per-connection limits; ``-1`` means unlimited (the server treats only -1 so)."""

    subs: int = NO_LIMIT
    data: int = NO_LIMIT
    payload: int = NO_LIMIT


def encode_user_jwt(
    signer: NKeyPair,
    user_public_key: str,
    *,
    issuer_account: str | None = None,
    name: str | None = None,
    permissions: UserPermissions | None = None,
    limits: UserLimits | None = None,
    audience: str | None = None,
    expires_at: int | None = None,
    issued_at: int | None = None,
) -> str:
    """A user JWT signed by an account key, or by a signing key with ``issuer_account``."""
    _require_signer(signer, KeyRole.ACCOUNT, "user JWT")
    require_key(user_public_key, KeyRole.USER)
    perms = permissions or UserPermissions()
    lim = limits or UserLimits()
    nats: dict[str, Any] = {
        "pub": perms.pub.to_json(),
        "sub": perms.sub.to_json(),
        "subs": lim.subs,
        "data": lim.data,
        "payload": lim.payload,
        "type": "user",
        "version": JWT_VERSION,
    }
    if perms.resp_max is not None:
        nats["resp"] = {"max": perms.resp_max, "ttl": perms.resp_ttl_ns}
    if issuer_account is not None and issuer_account != signer.public_key:
        require_key(issuer_account, KeyRole.ACCOUNT)
        nats["issuer_account"] = issuer_account
    claims: dict[str, Any] = {"sub": user_public_key, "nats": nats}
    if name is not None:
        claims["name"] = name
    if audience is not None:
        claims["aud"] = audience
    if expires_at is not None:
        claims["exp"] = expires_at
    return encode_jwt(claims, signer, issued_at=issued_at)
