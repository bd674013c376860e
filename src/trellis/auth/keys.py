"""Session keys: plain Ed25519 keys encoded as unpadded base64url (PROTOCOL §1).

The seed is the secret.  It is never part of ``repr``/``str``, log records or exception text,
and seed files are created with mode 0600 from the start.
"""

from __future__ import annotations

import binascii
import os
import re
from pathlib import Path

import nacl.bindings
import nacl.signing

from trellis.auth.ed25519 import verify_detached
from trellis.encoding import b64url_encode, sha256
from trellis.files import write_secret_file

__all__ = [
    "DOMAIN_BIND_FLOW",
    "DOMAIN_BOOTSTRAP_CLIENT",
    "DOMAIN_HEARTBEAT",
    "DOMAIN_NATS_CONNECT",
    "DOMAIN_OAUTH_INIT",
    "KeyFormatError",
    "SessionKey",
    "decode_public_key",
    "decode_signature",
    "domain_digest",
    "inbox_prefix",
    "verify_detached",
    "verify_domain_signature",
    "verify_signature",
]

DOMAIN_NATS_CONNECT = "nats-connect"
#: (ours) the connect token's optional ``nonceSig``: the session key signs the nonce nats-server
#: sent this very connection, so a captured token cannot open another one
DOMAIN_NATS_NONCE = "nats-connect-nonce"
DOMAIN_BIND_FLOW = "bind-flow"
DOMAIN_OAUTH_INIT = "oauth-init"
DOMAIN_BOOTSTRAP_CLIENT = "bootstrap-client"
#: (ours) a ``Health.Heartbeat`` signed by the instance it names; the value is the body's hash
DOMAIN_HEARTBEAT = "health-heartbeat"


class KeyFormatError(ValueError):
    """A key, seed or signature is not well-formed (the message never contains the secret)."""


class SessionKey:
    """An Ed25519 session key pair."""

    __slots__ = ("_secret", "_signing", "public_key")

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self._signing = signing_key
        #: libsodium's 64-byte expanded secret key, so signing skips PyNaCl's wrappers
        self._secret = nacl.bindings.crypto_sign_seed_keypair(bytes(signing_key))[1]
        #: the 43-character base64url public key (``sessionKey`` on the wire)
        self.public_key: str = b64url_encode(bytes(signing_key.verify_key))

    @classmethod
    def generate(cls) -> SessionKey:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed_b64url: str) -> SessionKey:
        raw = decode_public_key(seed_b64url.strip())  # a seed is spelled like a public key
        if raw is None:
            raise KeyFormatError("seed must be a canonical 43-character base64url value")
        return cls(nacl.signing.SigningKey(raw))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SessionKey:
        """Read a seed file written by :meth:`save` (or ``trellis keys new``)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyFormatError(f"cannot read seed file {path}: {exc.strerror}") from None
        return cls.from_seed(text)

    @property
    def seed(self) -> str:
        """The 43-character base64url seed.  Treat as a secret."""
        return b64url_encode(bytes(self._signing))

    @property
    def inbox_prefix(self) -> str:
        return inbox_prefix(self.public_key)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the seed to ``path`` with mode 0600; refuses to overwrite unless asked."""
        return write_secret_file(path, self.seed + "\n", overwrite=overwrite)

    def sign(self, message: bytes) -> bytes:
        return nacl.bindings.crypto_sign(message, self._secret)[:64]

    def sign_domain(self, domain: str, value: str) -> str:
        """``sign(seed, SHA256(utf8(domain + ":" + value)))`` as base64url."""
        return b64url_encode(self.sign(domain_digest(domain, value)))

    def __repr__(self) -> str:
        return f"SessionKey(public_key={self.public_key!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("SessionKey holds a secret and is not picklable")


def inbox_prefix(session_key: str) -> str:
    """``_INBOX.`` + the first 16 characters of the session key: its replies' subjects.

    The one definition of the rule. The characters are checked because the prefix lands in
    the session's ``sub.allow`` permission: a wildcard or dot there would widen it.
    """
    if type(session_key) is not str or not _INBOX_KEY.fullmatch(session_key, 0, 16):
        raise KeyFormatError("session key must start with 16 base64url characters")
    return _INBOX_ROOT + session_key[:16]


_INBOX_ROOT = "_INBOX."
_INBOX_KEY = re.compile(r"[A-Za-z0-9_-]{16}")


def domain_digest(domain: str, value: str) -> bytes:
    return sha256(f"{domain}:{value}".encode())


#: canonical unpadded base64url of 32 and 64 bytes: the unused low bits of the last
#: character must be zero, so every value has exactly one accepted spelling
_KEY_LAST = "AEIMQUYcgkosw048"
_SIG_LAST = "AQgw"
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _decode_canonical(text: str, length: int, last: str, padding: bytes) -> bytes | None:
    """Strict decode of unpadded base64url (no regex: it runs for every request's proof).

    Standard base64's own ``+``, ``/`` and ``=`` are refused before translating ``-_`` to
    them; ``strict_mode`` refuses everything else outside the alphabet.
    """
    if (
        type(text) is not str  # a str subclass could lie about its length or contents
        or len(text) != length
        or text[-1] not in last
        or "+" in text
        or "/" in text
        or "=" in text
    ):
        return None
    try:
        data = text.encode("ascii").translate(_URLSAFE_TO_STANDARD) + padding
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def decode_public_key(text: str) -> bytes | None:
    """The 32 bytes of a canonical 43-character base64url key, else ``None``."""
    return _decode_canonical(text, 43, _KEY_LAST, b"=")


def decode_signature(text: str) -> bytes | None:
    """The 64 bytes of a canonical 86-character base64url signature, else ``None``."""
    return _decode_canonical(text, 86, _SIG_LAST, b"==")


def verify_signature(public_key: str, message: bytes, signature: str) -> bool:
    """Constant-time Ed25519 verification (libsodium); malformed inputs verify as False."""
    key = decode_public_key(public_key)
    sig = decode_signature(signature)
    if key is None or sig is None:
        return False
    return verify_detached(key, message, sig)


def verify_domain_signature(public_key: str, domain: str, value: str, signature: str) -> bool:
    return verify_signature(public_key, domain_digest(domain, value), signature)
