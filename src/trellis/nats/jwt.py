"""NATS identities: nkeys, NATS JWTs (v2) and ``.creds`` files (PROTOCOL §1, §5).

Everything here is pure Python over the ``nkeys`` package and PyNaCl. The JWT format is
the one nats-server and the Go ``nats-io/jwt`` v2 library read: header
``{"typ":"JWT","alg":"ed25519-nkey"}``, unpadded base64url header and claims, and an
Ed25519 signature by the issuer nkey over ``header.payload``.

Secrets (seeds) never appear in exception messages, ``repr`` output or logs.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import nacl.exceptions
import nacl.signing
import nkeys

from trellis.encoding import b64url_decode, b64url_encode
from trellis.files import write_secret_file

__all__ = [
    "AUTHORIZATION_REQUEST_AUDIENCE",
    "JWT_ALGORITHM",
    "AuthCalloutConfig",
    "AuthorizationRequest",
    "Creds",
    "DecodedJwt",
    "JwtError",
    "KeyRole",
    "NKeyError",
    "NKeyPair",
    "SubjectPermission",
    "UserLimits",
    "UserPermissions",
    "account_claims",
    "authorization_response_claims",
    "callout_deny",
    "callout_grant",
    "decode_authorization_request",
    "decode_jwt",
    "decode_public_key",
    "decode_seed",
    "encode_account_jwt",
    "encode_authorization_response",
    "encode_jwt",
    "encode_operator_jwt",
    "encode_public_key",
    "encode_seed",
    "encode_user_jwt",
    "format_creds",
    "is_public_key",
    "operator_claims",
    "parse_creds",
    "read_creds",
    "user_claims",
    "verify_signature",
    "write_creds",
    "write_secret_file",
]

JWT_ALGORITHM: Final = "ed25519-nkey"
JWT_TYPE: Final = "JWT"
JWT_VERSION: Final = 2
AUTHORIZATION_REQUEST_AUDIENCE: Final = "nats-authorization-request"
NO_LIMIT: Final = -1

#: Tokens larger than this are refused before any parsing (a NATS JWT is a few KiB).
MAX_JWT_BYTES: Final = 1 << 20

_HEADER: Final = {"typ": JWT_TYPE, "alg": JWT_ALGORITHM}


class NKeyError(ValueError):
    """A NATS nkey (public key or seed) is malformed or has the wrong role."""


class JwtError(ValueError):
    """A NATS JWT is malformed, badly signed, expired or of the wrong kind."""


# --------------------------------------------------------------------------- nkeys


class KeyRole(enum.IntEnum):
    """The nkey prefix bytes (first base32 character of the public key)."""

    OPERATOR = 14 << 3  # "O"
    ACCOUNT = 0  # "A"
    USER = 20 << 3  # "U"
    SERVER = 13 << 3  # "N"
    CLUSTER = 2 << 3  # "C"
    CURVE = 23 << 3  # "X" (xkeys; see trellis.nats.xkey)


_PREFIX_BYTE_SEED: Final = 18 << 3  # "S"
_SIGNING_ROLES: Final = frozenset(
    {KeyRole.OPERATOR, KeyRole.ACCOUNT, KeyRole.USER, KeyRole.SERVER, KeyRole.CLUSTER}
)


def _crc16(data: bytes) -> bytes:
    value: int = nkeys.crc16(data)
    return value.to_bytes(2, "little")


def _b32_decode(text: str) -> bytes:
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise NKeyError("nkey is not ASCII") from exc
    try:
        return base64.b32decode(raw + b"=" * (-len(raw) % 8))
    except (binascii.Error, ValueError) as exc:
        raise NKeyError("nkey is not base32") from exc


def _role(prefix: int) -> KeyRole:
    try:
        return KeyRole(prefix)
    except ValueError as exc:
        raise NKeyError("nkey has an unknown prefix byte") from exc


def encode_public_key(role: KeyRole, raw: bytes) -> str:
    """Encode a raw 32-byte public key as an nkey (``prefix + key + crc16``, base32)."""
    if len(raw) != 32:
        raise NKeyError("public key must be 32 bytes")
    body = bytes([int(role)]) + raw
    return base64.b32encode(body + _crc16(body)).decode("ascii").rstrip("=")


def decode_public_key(key: str, *roles: KeyRole) -> tuple[KeyRole, bytes]:
    """Decode a public nkey, checking its checksum (and role when ``roles`` is given)."""
    if not isinstance(key, str) or len(key) != 56:
        raise NKeyError("public nkey must be a 56-character string")
    data = _b32_decode(key)
    if len(data) != 35:
        raise NKeyError("public nkey has the wrong length")
    body, checksum = data[:-2], data[-2:]
    if _crc16(body) != checksum:
        raise NKeyError("public nkey checksum mismatch")
    role = _role(body[0])
    if roles and role not in roles:
        raise NKeyError(f"public nkey has role {role.name}, expected one of {_names(roles)}")
    return role, body[1:]


def is_public_key(key: object, *roles: KeyRole) -> bool:
    """True when ``key`` is a well-formed public nkey (of one of ``roles`` if given)."""
    if not isinstance(key, str):
        return False
    try:
        decode_public_key(key, *roles)
    except NKeyError:
        return False
    return True


def encode_seed(role: KeyRole, raw: bytes) -> str:
    """Encode a 32-byte secret seed as an nkey seed (``S`` + role character + ...)."""
    if len(raw) != 32:
        raise NKeyError("seed must be 32 bytes")
    prefix = int(role)
    header = bytes([_PREFIX_BYTE_SEED | prefix >> 5, (prefix & 31) << 3])
    body = header + raw
    return base64.b32encode(body + _crc16(body)).decode("ascii").rstrip("=")


def decode_seed(seed: str | bytes, *roles: KeyRole) -> tuple[KeyRole, bytes]:
    """Decode an nkey seed into its role and 32 raw bytes. Errors never echo the seed."""
    text = seed.decode("ascii", "replace") if isinstance(seed, bytes) else seed
    if not isinstance(text, str) or len(text) != 58:
        raise NKeyError("nkey seed must be a 58-character string")
    data = _b32_decode(text)
    if len(data) != 36:
        raise NKeyError("nkey seed has the wrong length")
    body, checksum = data[:-2], data[-2:]
    if _crc16(body) != checksum:
        raise NKeyError("nkey seed checksum mismatch")
    if body[0] & 0xF8 != _PREFIX_BYTE_SEED:
        raise NKeyError("value is not an nkey seed")
    role = _role(((body[0] & 0x07) << 5) | ((body[1] & 0xF8) >> 3))
    if roles and role not in roles:
        raise NKeyError(f"nkey seed has role {role.name}, expected one of {_names(roles)}")
    if encode_seed(role, body[2:]) != text:
        raise NKeyError("nkey seed is not canonically encoded")
    return role, body[2:]


def _names(roles: Iterable[KeyRole]) -> str:
    return ", ".join(r.name for r in roles)


class NKeyPair:
    """An Ed25519 nkey with its seed. ``repr`` shows only the role and public key."""

    __slots__ = ("_keypair", "_public_key", "_role", "_seed")

    def __init__(self, seed: str) -> None:
        role, _raw = decode_seed(seed)
        if role not in _SIGNING_ROLES:
            raise NKeyError("seed is not an Ed25519 nkey seed")
        try:
            self._keypair: Any = nkeys.from_seed(seed.encode("ascii"))
        except nkeys.NkeysError as exc:
            raise NKeyError("invalid nkey seed") from exc
        self._role = role
        self._seed = seed
        public: bytes = self._keypair.public_key
        self._public_key = public.decode("ascii").rstrip("=")

    @classmethod
    def generate(cls, role: KeyRole) -> NKeyPair:
        if role not in _SIGNING_ROLES:
            raise NKeyError("curve keys are XKeyPair (trellis.nats.xkey)")
        raw = bytes(nacl.signing.SigningKey.generate())
        return cls(encode_seed(role, raw))

    @classmethod
    def from_seed(cls, seed: str | bytes) -> NKeyPair:
        text = seed.decode("ascii", "replace") if isinstance(seed, bytes) else seed
        return cls(text.strip())

    @classmethod
    def from_seed_file(cls, path: str | os.PathLike[str]) -> NKeyPair:
        return cls.from_seed(Path(path).read_text(encoding="ascii"))

    @property
    def role(self) -> KeyRole:
        return self._role

    @property
    def public_key(self) -> str:
        return self._public_key

    @property
    def seed(self) -> str:
        """The secret seed. Handle with care: never log it."""
        return self._seed

    def sign(self, data: bytes) -> bytes:
        signature: bytes = self._keypair.sign(data)
        return signature

    def __repr__(self) -> str:
        return f"NKeyPair(role={self._role.name}, public_key={self._public_key!r})"


def verify_signature(public_key: str, data: bytes, signature: bytes) -> bool:
    """Verify an Ed25519 signature by a public nkey (libsodium, constant time)."""
    try:
        _key_role, raw = decode_public_key(public_key, *_SIGNING_ROLES)
        nacl.signing.VerifyKey(raw).verify(data, signature)
    except (NKeyError, nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True


# --------------------------------------------------------------------------- encode / decode


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _jti(claims: Mapping[str, Any]) -> str:
    digest = hashlib.new("sha512_256", _json(claims)).digest()
    return base64.b32encode(digest).decode("ascii").rstrip("=")


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
    body["jti"] = _jti(body)
    signing_input = f"{b64url_encode(_json(_HEADER))}.{b64url_encode(_json(body))}"
    signature = signer.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}"


@dataclass(frozen=True)
class DecodedJwt:
    """A verified NATS JWT."""

    header: dict[str, Any]
    claims: dict[str, Any]
    token: str = field(repr=False)

    @property
    def issuer(self) -> str:
        value: str = self.claims["iss"]
        return value

    @property
    def subject(self) -> str | None:
        return _opt_str(self.claims.get("sub"))

    @property
    def audience(self) -> str | None:
        return _opt_str(self.claims.get("aud"))

    @property
    def nats(self) -> dict[str, Any]:
        value = self.claims.get("nats")
        return value if isinstance(value, dict) else {}

    @property
    def type(self) -> str | None:
        return _opt_str(self.nats.get("type"))


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _decode_part(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(part))
    except (ValueError, UnicodeDecodeError) as exc:
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
    if not isinstance(typ, str) or typ.upper() != JWT_TYPE:
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
    roles = tuple(issuer_roles) if issuer_roles is not None else tuple(_SIGNING_ROLES)
    if not isinstance(issuer, str) or not issuer:
        raise JwtError("JWT has no issuer")
    try:
        _issuer_role, raw = decode_public_key(issuer, *roles)
    except NKeyError as exc:
        raise JwtError(f"JWT issuer is not a valid public nkey: {exc}") from exc
    try:
        nacl.signing.VerifyKey(raw).verify(f"{parts[0]}.{parts[1]}".encode("ascii"), signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError) as exc:
        raise JwtError("JWT signature does not verify") from exc
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
    return DecodedJwt(header=header, claims=claims, token=token)


# --------------------------------------------------------------------------- claim builders


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


@dataclass(frozen=True)
class AuthCalloutConfig:
    """The ``authorization`` block of an account running the auth callout."""

    auth_users: tuple[str, ...]
    allowed_accounts: tuple[str, ...]
    xkey: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "auth_users": list(self.auth_users),
            "allowed_accounts": list(self.allowed_accounts),
        }
        if self.xkey:
            out["xkey"] = self.xkey
        return out


def _require(key: str, *roles: KeyRole) -> None:
    try:
        decode_public_key(key, *roles)
    except NKeyError as exc:
        raise JwtError(str(exc)) from exc


def operator_claims(
    operator_public_key: str,
    *,
    name: str,
    system_account: str | None = None,
    signing_keys: Iterable[str] = (),
) -> dict[str, Any]:
    """Claims of a (self-signed) operator JWT."""
    _require(operator_public_key, KeyRole.OPERATOR)
    nats: dict[str, Any] = {"type": "operator", "version": JWT_VERSION}
    keys = list(signing_keys)
    for key in keys:
        _require(key, KeyRole.OPERATOR)
    if keys:
        nats["signing_keys"] = keys
    if system_account is not None:
        _require(system_account, KeyRole.ACCOUNT)
        nats["system_account"] = system_account
    return {"name": name, "sub": operator_public_key, "nats": nats}


def account_claims(
    account_public_key: str,
    *,
    name: str,
    signing_keys: Iterable[str] = (),
    jetstream: bool = True,
    authorization: AuthCalloutConfig | None = None,
) -> dict[str, Any]:
    """Claims of an account JWT (signed by the operator).

    ``jetstream=False`` omits every JetStream limit, which disables JetStream for the
    account; the system account must be built that way or nats-server refuses to start.
    """
    _require(account_public_key, KeyRole.ACCOUNT)
    limits: dict[str, Any] = {
        "subs": NO_LIMIT,
        "data": NO_LIMIT,
        "payload": NO_LIMIT,
        "imports": NO_LIMIT,
        "exports": NO_LIMIT,
        "wildcards": True,
        "conn": NO_LIMIT,
        "leaf": NO_LIMIT,
    }
    if jetstream:
        for key in ("mem_storage", "disk_storage", "streams", "consumer"):
            limits[key] = NO_LIMIT
    keys = list(signing_keys)
    for key in keys:
        _require(key, KeyRole.ACCOUNT)
    nats: dict[str, Any] = {
        "limits": limits,
        "default_permissions": {"pub": {}, "sub": {}},
        "type": "account",
        "version": JWT_VERSION,
    }
    if keys:
        nats["signing_keys"] = keys
    if authorization is not None:
        for key in authorization.auth_users:
            _require(key, KeyRole.USER)
        for key in authorization.allowed_accounts:
            _require(key, KeyRole.ACCOUNT)
        if authorization.xkey is not None:
            _require(authorization.xkey, KeyRole.CURVE)
        nats["authorization"] = authorization.to_json()
    return {"name": name, "sub": account_public_key, "nats": nats}


def user_claims(
    user_public_key: str,
    *,
    name: str | None = None,
    permissions: UserPermissions | None = None,
    limits: UserLimits | None = None,
    issuer_account: str | None = None,
    bearer_token: bool = False,
    audience: str | None = None,
    expires_at: int | None = None,
) -> dict[str, Any]:
    """Claims of a user JWT. ``issuer_account`` is required when signed by a signing key."""
    _require(user_public_key, KeyRole.USER)
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
    if bearer_token:
        nats["bearer_token"] = True
    if issuer_account is not None:
        _require(issuer_account, KeyRole.ACCOUNT)
        nats["issuer_account"] = issuer_account
    claims: dict[str, Any] = {"sub": user_public_key, "nats": nats}
    if name is not None:
        claims["name"] = name
    if audience is not None:
        claims["aud"] = audience
    if expires_at is not None:
        claims["exp"] = expires_at
    return claims


def authorization_response_claims(
    user_nkey: str,
    server_id: str,
    *,
    user_jwt: str | None = None,
    error: str | None = None,
    issuer_account: str | None = None,
) -> dict[str, Any]:
    """Claims of an ``authorization_response``: exactly one of ``user_jwt``/``error``."""
    if (user_jwt is None) == (error is None):
        raise JwtError("authorization response needs exactly one of user_jwt and error")
    _require(user_nkey, KeyRole.USER)
    if not server_id:
        raise JwtError("authorization response needs the server id as audience")
    nats: dict[str, Any] = {"type": "authorization_response", "version": JWT_VERSION}
    if user_jwt is not None:
        nats["jwt"] = user_jwt
    if error is not None:
        nats["error"] = error
    if issuer_account is not None:
        _require(issuer_account, KeyRole.ACCOUNT)
        nats["issuer_account"] = issuer_account
    return {"sub": user_nkey, "aud": server_id, "nats": nats}


# --------------------------------------------------------------------------- signed helpers


def encode_operator_jwt(
    operator: NKeyPair,
    *,
    name: str,
    system_account: str | None = None,
    signing_keys: Iterable[str] = (),
) -> str:
    if operator.role is not KeyRole.OPERATOR:
        raise JwtError("operator JWT must be signed by an operator key")
    claims = operator_claims(
        operator.public_key, name=name, system_account=system_account, signing_keys=signing_keys
    )
    return encode_jwt(claims, operator)


def encode_account_jwt(
    operator: NKeyPair,
    account_public_key: str,
    *,
    name: str,
    signing_keys: Iterable[str] = (),
    jetstream: bool = True,
    authorization: AuthCalloutConfig | None = None,
) -> str:
    if operator.role is not KeyRole.OPERATOR:
        raise JwtError("account JWT must be signed by an operator key")
    claims = account_claims(
        account_public_key,
        name=name,
        signing_keys=signing_keys,
        jetstream=jetstream,
        authorization=authorization,
    )
    return encode_jwt(claims, operator)


def encode_user_jwt(
    signer: NKeyPair,
    user_public_key: str,
    *,
    issuer_account: str | None = None,
    name: str | None = None,
    permissions: UserPermissions | None = None,
    limits: UserLimits | None = None,
    bearer_token: bool = False,
    audience: str | None = None,
    expires_at: int | None = None,
    issued_at: int | None = None,
) -> str:
    """A user JWT signed by an account key, or by a signing key with ``issuer_account``."""
    if signer.role is not KeyRole.ACCOUNT:
        raise JwtError("user JWT must be signed by an account (signing) key")
    if issuer_account == signer.public_key:
        issuer_account = None
    claims = user_claims(
        user_public_key,
        name=name,
        permissions=permissions,
        limits=limits,
        issuer_account=issuer_account,
        bearer_token=bearer_token,
        audience=audience,
        expires_at=expires_at,
    )
    return encode_jwt(claims, signer, issued_at=issued_at)


def encode_authorization_response(
    signer: NKeyPair,
    *,
    user_nkey: str,
    server_id: str,
    user_jwt: str | None = None,
    error: str | None = None,
    issuer_account: str | None = None,
) -> str:
    if signer.role is not KeyRole.ACCOUNT:
        raise JwtError("authorization response must be signed by an account (signing) key")
    if issuer_account == signer.public_key:
        issuer_account = None
    claims = authorization_response_claims(
        user_nkey, server_id, user_jwt=user_jwt, error=error, issuer_account=issuer_account
    )
    return encode_jwt(claims, signer)


# --------------------------------------------------------------------------- auth callout


@dataclass(frozen=True)
class AuthorizationRequest:
    """The fields of a server-signed ``authorization_request`` the callout needs."""

    user_nkey: str
    server_id: str
    server_name: str | None
    server_xkey: str | None
    account: str | None
    client_info: dict[str, Any]
    connect_opts: dict[str, Any] = field(repr=False)
    auth_token: str | None = field(repr=False)
    issuer: str
    expires_at: int | None


def decode_authorization_request(token: str, *, now: float | None = None) -> AuthorizationRequest:
    """Verify and parse the (already unsealed) request JWT sent on ``$SYS.REQ.USER.AUTH``."""
    decoded = decode_jwt(
        token,
        expected_type="authorization_request",
        issuer_roles=(KeyRole.SERVER,),
        now=now,
    )
    if decoded.audience != AUTHORIZATION_REQUEST_AUDIENCE:
        raise JwtError("authorization request has the wrong audience")
    nats = decoded.nats
    user_nkey = nats.get("user_nkey")
    if not is_public_key(user_nkey, KeyRole.USER):
        raise JwtError("authorization request has no valid user_nkey")
    server = nats.get("server_id")
    if not isinstance(server, dict) or not isinstance(server.get("id"), str) or not server["id"]:
        raise JwtError("authorization request has no server id")
    client_info = nats.get("client_info")
    connect_opts = nats.get("connect_opts")
    client_info = client_info if isinstance(client_info, dict) else {}
    connect_opts = connect_opts if isinstance(connect_opts, dict) else {}
    token_value = connect_opts.get("auth_token")
    exp = decoded.claims.get("exp")
    assert isinstance(user_nkey, str)
    return AuthorizationRequest(
        user_nkey=user_nkey,
        server_id=server["id"],
        server_name=_opt_str(server.get("name")),
        server_xkey=_opt_str(server.get("xkey")),
        account=decoded.subject,
        client_info=client_info,
        connect_opts=connect_opts,
        auth_token=token_value if isinstance(token_value, str) and token_value else None,
        issuer=decoded.issuer,
        expires_at=exp if isinstance(exp, int) else None,
    )


def callout_grant(
    request: AuthorizationRequest,
    *,
    user_signer: NKeyPair,
    target_account: str,
    response_signer: NKeyPair,
    callout_account: str,
    permissions: UserPermissions,
    limits: UserLimits | None = None,
    name: str | None = None,
    ttl_seconds: int = 3600,
    now: int | None = None,
) -> str:
    """Mint the user JWT for ``request`` and wrap it in a signed authorization response.

    ``user_signer`` is the target account's signing key (the user lands in
    ``target_account``); ``response_signer`` is the callout account's signing key.
    Returns the response JWT, ready to be sealed to ``request.server_xkey``.
    """
    issued = int(time.time()) if now is None else now
    user_jwt = encode_user_jwt(
        user_signer,
        request.user_nkey,
        issuer_account=target_account,
        name=name,
        permissions=permissions,
        limits=limits,
        audience=target_account,
        issued_at=issued,
        expires_at=issued + ttl_seconds,
    )
    return encode_authorization_response(
        response_signer,
        user_nkey=request.user_nkey,
        server_id=request.server_id,
        user_jwt=user_jwt,
        issuer_account=callout_account,
    )


def callout_deny(
    request: AuthorizationRequest,
    *,
    response_signer: NKeyPair,
    callout_account: str,
    error: str,
) -> str:
    """A signed authorization response refusing ``request`` with reason code ``error``."""
    if not error:
        raise JwtError("a deny response needs a reason code")
    return encode_authorization_response(
        response_signer,
        user_nkey=request.user_nkey,
        server_id=request.server_id,
        error=error,
        issuer_account=callout_account,
    )


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class Creds:
    """A parsed ``.creds`` file: the user JWT and the user's nkey seed (secret)."""

    jwt: str
    seed: str = field(repr=False)

    def keypair(self) -> NKeyPair:
        return NKeyPair.from_seed(self.seed)


_CREDS_JWT = re.compile(
    r"-{3,}BEGIN NATS USER JWT-{3,}\s*\n\s*(\S+)\s*\n\s*-{3,}END NATS USER JWT-{3,}"
)
_CREDS_SEED = re.compile(
    r"-{3,}BEGIN USER NKEY SEED-{3,}\s*\n\s*(\S+)\s*\n\s*-{3,}END USER NKEY SEED-{3,}"
)


def format_creds(user_jwt: str, seed: str) -> str:
    """The standard ``.creds`` text (as nsc writes it) for a user JWT and seed."""
    if not user_jwt or any(c.isspace() for c in user_jwt):
        raise JwtError("user JWT must be a single token")
    decode_seed(seed, KeyRole.USER)
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n"
        "\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n"
        "\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed}\n"
        "------END USER NKEY SEED------\n"
        "\n"
        "*************************************************************\n"
    )


def parse_creds(text: str) -> Creds:
    """Parse ``.creds`` text. Raises :class:`JwtError` (never echoing the seed)."""
    jwt_match = _CREDS_JWT.search(text)
    seed_match = _CREDS_SEED.search(text)
    if jwt_match is None:
        raise JwtError("creds have no NATS USER JWT block")
    if seed_match is None:
        raise JwtError("creds have no USER NKEY SEED block")
    seed = seed_match.group(1)
    try:
        decode_seed(seed, KeyRole.USER)
    except NKeyError as exc:
        raise JwtError(f"creds seed is invalid: {exc}") from exc
    return Creds(jwt=jwt_match.group(1), seed=seed)


def read_creds(path: str | os.PathLike[str]) -> Creds:
    return parse_creds(Path(path).read_text(encoding="utf-8"))


def write_creds(
    path: str | os.PathLike[str], user_jwt: str, seed: str, *, overwrite: bool = False
) -> Path:
    """Write a ``.creds`` file with mode 0600."""
    return write_secret_file(path, format_creds(user_jwt, seed), overwrite=overwrite)
