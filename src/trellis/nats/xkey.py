"""Curve (X25519) nkeys, "xkeys", as nats-server uses them to seal auth-callout traffic.

The ``nkeys`` package (0.2) has no curve keys: they are encoded by :mod:`.nkey` with the
same base32 + CRC16 scheme (public prefix byte ``23 << 3`` → ``"X…"``, seed ``"SX…"``). Sealing
is a NaCl box (X25519 + XSalsa20-Poly1305) and a sealed message is
``b"xkv1" + nonce(24) + box ciphertext``, which is what Go ``nkeys`` produces and accepts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.utils

from trellis.nats.nkey import (
    KeyRole,
    NKeyError,
    decode_public_key,
    decode_seed,
    encode_public_key,
    encode_seed,
)

__all__ = ["XKEY_VERSION", "XKeyError", "XKeyPair", "decode_xkey"]

XKEY_VERSION: Final = b"xkv1"
_NONCE_LEN: Final = nacl.public.Box.NONCE_SIZE  # 24
_MAC_LEN: Final = 16
_MIN_SEALED: Final = len(XKEY_VERSION) + _NONCE_LEN + _MAC_LEN


class XKeyError(ValueError):
    """An xkey is malformed, or a sealed message cannot be opened."""


def decode_xkey(public_key: str) -> bytes:
    """The raw 32-byte X25519 public key of an ``X…`` xkey."""
    try:
        _role, raw = decode_public_key(public_key, KeyRole.CURVE)
    except NKeyError as exc:
        raise XKeyError(f"invalid xkey: {exc}") from exc
    return raw


class XKeyPair:
    """An X25519 key pair in nkey encoding. ``repr`` shows only the public key.

    ``seed`` (``SX…``) is the secret: never log it.
    """

    __slots__ = ("_private", "public_key", "seed")

    def __init__(self, seed: str) -> None:
        try:
            _role, raw = decode_seed(seed.strip(), KeyRole.CURVE)
        except NKeyError as exc:
            raise XKeyError(f"invalid xkey seed: {exc}") from exc
        self.seed = seed.strip()
        self._private = nacl.public.PrivateKey(raw)
        public_raw = nacl.bindings.crypto_scalarmult_base(raw)
        self.public_key = encode_public_key(KeyRole.CURVE, public_raw)

    @classmethod
    def generate(cls) -> XKeyPair:
        return cls(encode_seed(KeyRole.CURVE, nacl.utils.random(32)))

    @classmethod
    def from_seed_file(cls, path: str | os.PathLike[str]) -> XKeyPair:
        return cls(Path(path).read_text(encoding="ascii"))

    def seal(self, data: bytes, recipient: str, *, nonce: bytes | None = None) -> bytes:
        """Encrypt and authenticate ``data`` for the holder of xkey ``recipient``."""
        if nonce is None:
            nonce = nacl.utils.random(_NONCE_LEN)
        if len(nonce) != _NONCE_LEN:
            raise XKeyError("nonce must be 24 bytes")
        box = nacl.public.Box(self._private, nacl.public.PublicKey(decode_xkey(recipient)))
        ciphertext = box.encrypt(data, nonce).ciphertext
        return XKEY_VERSION + nonce + ciphertext

    def open(self, sealed: bytes, sender: str) -> bytes:
        """Decrypt a message sealed to this key by xkey ``sender``; raise on tampering."""
        if len(sealed) < _MIN_SEALED or not sealed.startswith(XKEY_VERSION):
            raise XKeyError("not an xkv1 sealed message")
        offset = len(XKEY_VERSION)
        nonce = sealed[offset : offset + _NONCE_LEN]
        ciphertext = sealed[offset + _NONCE_LEN :]
        box = nacl.public.Box(self._private, nacl.public.PublicKey(decode_xkey(sender)))
        try:
            plain: bytes = box.decrypt(ciphertext, nonce)
        except nacl.exceptions.CryptoError as exc:
            raise XKeyError("sealed message failed authentication") from exc
        return plain

    def __repr__(self) -> str:
        return f"XKeyPair(public_key={self.public_key!r})"
