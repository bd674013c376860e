"""Binary encodings shared by every layer: base64url without padding (PROTOCOL §1)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re


def b64url_encode(data: bytes) -> str:
    """Encode bytes as base64url with the padding stripped."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded (or padded) base64url; raise ``ValueError`` on anything else."""
    if not isinstance(text, str):
        raise ValueError("base64url value must be a string")
    stripped = text.rstrip("=")
    if not _B64URL.fullmatch(stripped):
        raise ValueError("value is not base64url")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("value is not base64url") from exc


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


_B64URL = re.compile(r"[A-Za-z0-9_-]*")
