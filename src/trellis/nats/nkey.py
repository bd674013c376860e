"""NATS nkeys: role-prefixed Ed25519 (and X25519) keys in base32 with a CRC16 (PROTOCOL §1).

The ``nkeys`` package signs, derives public keys from seeds and computes the CRC16; this
module uses it for that. What ``nkeys`` 0.2 lacks is written here: decoding a *public* key
(it has no decoder for one), checking the checksum of a seed (its ``decode_seed`` ignores
it), the curve prefix ``X`` (its ``encode_seed`` refuses it; :mod:`.xkey` needs it), key
generation and verification against a public key.

Errors never echo a seed.
"""

from __future__ import annotations

import base64
import binascii
import enum
import os
from pathlib import Path
from typing import Any, Final

import nacl.utils
import nkeys

from trellis.auth.keys import verify_detached

__all__ = [
    "KeyRole",
    "NKeyError",
    "NKeyPair",
    "decode_public_key",
    "decode_seed",
    "encode_public_key",
    "encode_seed",
    "is_public_key",
    "verify_signature",
]


class NKeyError(ValueError):
    """A NATS nkey (public key or seed) is malformed or has the wrong role."""


class KeyRole(enum.IntEnum):
    """The nkey prefix bytes (first base32 character of the public key)."""

    OPERATOR = nkeys.PREFIX_BYTE_OPERATOR  # "O"
    ACCOUNT = nkeys.PREFIX_BYTE_ACCOUNT  # "A"
    USER = nkeys.PREFIX_BYTE_USER  # "U"
    SERVER = nkeys.PREFIX_BYTE_SERVER  # "N"
    CLUSTER = nkeys.PREFIX_BYTE_CLUSTER  # "C"
    CURVE = 23 << 3  # "X" (xkeys; see trellis.nats.xkey)


SIGNING_ROLES: Final = frozenset(
    {KeyRole.OPERATOR, KeyRole.ACCOUNT, KeyRole.USER, KeyRole.SERVER, KeyRole.CLUSTER}
)


def _encode(body: bytes) -> str:
    return base64.b32encode(body + nkeys.crc16_checksum(body)).decode("ascii").rstrip("=")


def _decode(text: object, chars: int, what: str) -> bytes:
    """The body of a base32 nkey of ``chars`` characters whose CRC16 checks out."""
    if not isinstance(text, str) or len(text) != chars:
        raise NKeyError(f"{what} must be a {chars}-character string")
    try:
        data = base64.b32decode(text.encode("ascii") + b"=" * (-chars % 8))
    except (binascii.Error, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise NKeyError(f"{what} is not base32") from exc
    body = data[:-2]
    if nkeys.crc16_checksum(body) != data[-2:]:
        raise NKeyError(f"{what} checksum mismatch")
    return body


def _role(prefix: int, roles: tuple[KeyRole, ...], what: str) -> KeyRole:
    try:
        role = KeyRole(prefix)
    except ValueError as exc:
        raise NKeyError(f"{what} has an unknown prefix byte") from exc
    if roles and role not in roles:
        names = ", ".join(r.name for r in roles)
        raise NKeyError(f"{what} has role {role.name}, expected one of {names}")
    return role


def encode_public_key(role: KeyRole, raw: bytes) -> str:
    """Encode a raw 32-byte public key as an nkey (``prefix + key + crc16``, base32)."""
    if len(raw) != 32:
        raise NKeyError("public key must be 32 bytes")
    return _encode(bytes([int(role)]) + raw)


def decode_public_key(key: str, *roles: KeyRole) -> tuple[KeyRole, bytes]:
    """Decode a public nkey, checking its checksum (and role when ``roles`` is given)."""
    body = _decode(key, 56, "public nkey")
    return _role(body[0], roles, "public nkey"), body[1:]


def is_public_key(key: object, *roles: KeyRole) -> bool:
    """True when ``key`` is a well-formed public nkey (of one of ``roles`` if given)."""
    try:
        return isinstance(key, str) and bool(decode_public_key(key, *roles))
    except NKeyError:
        return False


def encode_seed(role: KeyRole, raw: bytes) -> str:
    """Encode a 32-byte secret seed as an nkey seed (``S`` + role character + ...)."""
    if len(raw) != 32:
        raise NKeyError("seed must be 32 bytes")
    prefix = int(role)
    return _encode(bytes([nkeys.PREFIX_BYTE_SEED | prefix >> 5, (prefix & 31) << 3]) + raw)


def decode_seed(seed: str | bytes, *roles: KeyRole) -> tuple[KeyRole, bytes]:
    """Decode an nkey seed into its role and 32 raw bytes. Errors never echo the seed."""
    text = seed.decode("ascii", "replace") if isinstance(seed, bytes) else seed
    body = _decode(text, 58, "nkey seed")
    if body[0] & 0xF8 != nkeys.PREFIX_BYTE_SEED:
        raise NKeyError("value is not an nkey seed")
    role = _role(((body[0] & 0x07) << 5) | ((body[1] & 0xF8) >> 3), roles, "nkey seed")
    if encode_seed(role, body[2:]) != text:
        raise NKeyError("nkey seed is not canonically encoded")
    return role, body[2:]


class NKeyPair:
    """An Ed25519 nkey with its seed. ``repr`` shows only the role and public key.

    ``seed`` is the secret: handle with care, never log it.
    """

    __slots__ = ("_keypair", "public_key", "role", "seed")

    def __init__(self, seed: str) -> None:
        self.role, _raw = decode_seed(seed, *SIGNING_ROLES)
        self.seed = seed
        self._keypair: Any = nkeys.from_seed(seed.encode("ascii"))
        public: bytes = self._keypair.public_key
        self.public_key = public.decode("ascii")

    @classmethod
    def generate(cls, role: KeyRole) -> NKeyPair:
        return cls(encode_seed(role, nacl.utils.random(32)))

    @classmethod
    def from_seed(cls, seed: str | bytes) -> NKeyPair:
        text = seed.decode("ascii", "replace") if isinstance(seed, bytes) else seed
        return cls(text.strip())

    @classmethod
    def from_seed_file(cls, path: str | os.PathLike[str]) -> NKeyPair:
        return cls.from_seed(Path(path).read_text(encoding="ascii"))

    def sign(self, data: bytes) -> bytes:
        signature: bytes = self._keypair.sign(data)
        return signature

    def __repr__(self) -> str:
        return f"NKeyPair(role={self.role.name}, public_key={self.public_key!r})"


def verify_signature(public_key: str, data: bytes, signature: bytes) -> bool:
    """Verify an Ed25519 signature by a public nkey (libsodium, constant time)."""
    try:
        _role, raw = decode_public_key(public_key, *SIGNING_ROLES)
    except NKeyError:
        return False
    return len(signature) == 64 and verify_detached(raw, data, signature)
